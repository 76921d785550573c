"""Decode + align against generated media whose truth is known: sample-exact audio on one clock
with the video, frames picked by timestamp, damaged input skipped and counted."""

import numpy as np
import pytest

from media import find_markers
from operators.media.align import Aligner
from operators.media.decode import DecodeConfig, Decoder, MediaError, probe
from operators.records import NS_PER_SECOND, samples_between

RATE = 16_000


def decode_segments(path, config=DecodeConfig(), window_ns=2 * NS_PER_SECOND):
    with Decoder(path, config) as decoder:
        aligner = Aligner("t", has_video=decoder.has_video, has_audio=decoder.has_audio, window_ns=window_ns)
        segments = []
        for item in decoder:
            segments += aligner.process([item])
        segments += aligner.flush(decoder.video_end_ns)
        return segments, decoder.stats


def content_to_clock_ns(truth, content_seconds: float) -> int:
    """Where an event at content time t sits on vidscope's clock (0 = the container's start)."""
    return round((truth.start_seconds + content_seconds - truth.container_start_seconds) * NS_PER_SECOND)


def check_contiguous(segments):
    assert segments[0].span.start_ns == 0
    for a, b in zip(segments, segments[1:]):
        assert a.span.end_ns == b.span.start_ns
    for s in segments:
        if s.audio is not None:
            assert len(s.audio) == samples_between(s.span.start_ns, s.span.end_ns)


@pytest.mark.parametrize("case", ["mp4", "mp4_late_audio", "mpegts", "mkv", "vfr", "audio_only_m4a", "audio_only_wav"])
def test_marker_lands_on_the_sample_the_truth_says(synth_case, case):
    path, truth = synth_case(case)
    segments, stats = decode_segments(path)
    check_contiguous(segments)
    audio = np.concatenate([s.audio for s in segments])
    (marker_s,) = truth.marker_times_seconds
    expected = content_to_clock_ns(truth, marker_s) * RATE / NS_PER_SECOND
    (found,) = find_markers(audio, RATE, 1)
    tolerance = max(2.0, truth.timestamp_tolerance_seconds * RATE + 1)
    assert abs(found - expected) <= tolerance, f"{case}: marker at sample {found}, truth {expected:.1f}"
    assert stats.damaged_packets == 0


@pytest.mark.parametrize("case", ["mp4", "mp4_late_audio", "mpegts", "vfr", "video_only"])
def test_frames_are_the_first_shown_at_or_after_each_second(synth_case, case):
    path, truth = synth_case(case)
    segments, _ = decode_segments(path)
    check_contiguous(segments)
    times = truth.frame_times_seconds or tuple(k / truth.frames_per_second for k in range(truth.frame_count))
    clock = np.array([content_to_clock_ns(truth, t) for t in times])
    picked = np.concatenate([s.frame_pts_ns for s in segments])
    expected = []
    for target in range(0, int(clock[-1]) + 1, NS_PER_SECOND):
        later = clock[clock >= target]
        if len(later) and (not expected or later[0] > expected[-1]):
            expected.append(int(later[0]))
    np.testing.assert_allclose(picked, expected, atol=NS_PER_SECOND // 1000)
    for s in segments[:-1]:
        assert s.frames.shape[1:] == (224, 298, 3)  # 320x240 scaled on the decoder side, aspect kept
    if case == "video_only":
        assert all(s.audio is None for s in segments)


def test_picture_changes_at_the_cut(synth_case):
    # Cuts at 2.0 and 4.0 s: frames within a shot look alike, frames across a cut do not.
    path, _ = synth_case("mp4")
    segments, _ = decode_segments(path, DecodeConfig(frames_per_second=2.0))
    frames = np.concatenate([s.frames for s in segments]).astype(np.float32)
    diff = [np.abs(a - b).mean() for a, b in zip(frames, frames[1:])]
    # Frames at 0, .5, ... 5.5 s: the cut between frame 3 (1.5 s) and 4 (2.0 s), and 7 and 8.
    cuts = sorted(np.argsort(diff)[-2:])
    assert cuts == [3, 7]


def test_skipping_unsampled_frames_changes_no_picture(synth_case):
    path, _ = synth_case("fixed_gop")
    fast, fast_stats = decode_segments(path, DecodeConfig(skip_unsampled=True))
    full, full_stats = decode_segments(path, DecodeConfig(skip_unsampled=False))
    assert fast_stats.video_frames_decoded < full_stats.video_frames_decoded
    for a, b in zip(fast, full):
        np.testing.assert_array_equal(a.frame_pts_ns, b.frame_pts_ns)
        np.testing.assert_array_equal(a.frames, b.frames)


def test_keyframe_sampling_decodes_only_the_keyframes_that_the_instants_want(synth_case):
    # Keyframes every 0.5 s fall on every instant: the same pictures, a fraction of the decode.
    path, _ = synth_case("fixed_gop")
    triage, triage_stats = decode_segments(path, DecodeConfig(sample="keyframes"))
    exact, exact_stats = decode_segments(path)
    assert triage_stats.video_frames_decoded == triage_stats.frames_sampled == 6
    assert exact_stats.video_frames_decoded > 4 * triage_stats.video_frames_decoded
    for a, b in zip(triage, exact, strict=True):
        np.testing.assert_array_equal(a.frame_pts_ns, b.frame_pts_ns)
        assert np.abs(a.frames.astype(int) - b.frames.astype(int)).max() <= 2  # one frame, decoded alone or in sequence


def test_keyframe_sampling_keeps_each_keyframes_own_time(synth_case):
    # Keyframes at 0, 1.5, 3 and 4.5 s; instants 0..5 s. Nearest: 0 -> 0; 1, 2 -> 1.5; 3 -> 3;
    # 4, 5 -> 4.5. Each chosen keyframe is decoded once and keeps its own timestamp.
    path, _ = synth_case("gop_1_5s")
    segments, stats = decode_segments(path, DecodeConfig(sample="keyframes"))
    check_contiguous(segments)
    picked = np.concatenate([s.frame_pts_ns for s in segments])
    np.testing.assert_allclose(picked, [0, 1.5e9, 3e9, 4.5e9], atol=NS_PER_SECOND // 1000)
    assert stats.video_frames_decoded == 4
    assert [len(s.frame_pts_ns) for s in segments] == [2, 1, 1]  # windows of 2 s: [0, 2), [2, 4), [4, 6)


def test_last_partial_window(synth_case):
    path, truth = synth_case("mp4")
    segments, _ = decode_segments(path, window_ns=4 * NS_PER_SECOND)
    assert [s.span.start_ns for s in segments] == [0, 4 * NS_PER_SECOND]
    assert segments[-1].span.end_ns >= round(truth.duration_seconds * NS_PER_SECOND)
    assert segments[-1].span.duration_ns < 4 * NS_PER_SECOND


@pytest.mark.parametrize("kind", ["truncated", "garbage_middle"])
def test_damaged_file_is_decoded_around_the_damage(damaged_media, synth_case, kind):
    path = damaged_media(kind)
    segments, stats = decode_segments(path)
    assert segments, "the intact part must still be decoded"
    check_contiguous(segments)
    assert sum(len(s.frames) for s in segments) >= 2
    if kind == "garbage_middle":
        assert stats.damaged_packets > 0


@pytest.mark.parametrize("kind, message", [("garbage", "not readable"), ("empty", "empty"), ("missing", "no such file")])
def test_unreadable_input_says_why(damaged_media, kind, message):
    path = damaged_media(kind)
    with pytest.raises(MediaError, match=message):
        Decoder(path)


def test_probe_reads_the_header(synth_case):
    path, truth = synth_case("mpegts")
    info = probe(path)
    assert info.has_video and info.has_audio
    assert info.width == 320 and info.height == 240
    assert abs(info.start_ns / NS_PER_SECOND - truth.container_start_seconds) < 1e-3


# -- untrusted media (issue 10, hole 8) ----------------------------------------------------------------


def test_a_playlist_named_like_a_video_is_refused_and_opens_nothing_it_names(synth_case, tmp_path):
    ts, _ = synth_case("mpegts")
    hls = tmp_path / "holiday.mp4"  # an HLS playlist pointing at a real local file
    hls.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{ts}\n#EXT-X-ENDLIST\n")
    concat = tmp_path / "clip.mp4"
    concat.write_text(f"ffconcat version 1.0\nfile '{ts}'\n")
    bare_concat = tmp_path / "reel.mkv"
    bare_concat.write_text(f"file '{ts}'\n")
    for path in (hls, concat, bare_concat):
        with pytest.raises(MediaError, match="a playlist, not a media file"):
            Decoder(path)


def test_a_local_file_may_only_use_media_demuxers_and_the_file_protocol(synth_case, tmp_path):
    # Past the sniffing of the first bytes, FFmpeg itself refuses any demuxer not on the list:
    # asked for by name (as a caller could), the hls demuxer does not open a local file.
    import shutil

    ts, _ = synth_case("mpegts")
    shutil.copy(ts, tmp_path / "part.ts")
    hidden = tmp_path / "hidden.mp4"  # a concat list that starts with a comment: no sniffing catches it
    hidden.write_text("# my holiday\nfile 'part.ts'\n")
    with pytest.raises(MediaError, match="not readable"):
        Decoder(hidden, format="concat")
    for case in ("mp4", "mpegts"):  # every ordinary container still opens
        path, _ = synth_case(case)
        with Decoder(path) as decoder:
            assert decoder.has_video and decoder.has_audio


def test_a_video_too_large_or_too_thin_is_refused_with_its_size(tmp_path):
    import av

    path = tmp_path / "sliver.mp4"
    with av.open(str(path), "w") as out:  # 4096 x 16: scaled to 224 px high it would be 57,344 px long
        stream = out.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = 4096, 16, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 4096, 3), np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(MediaError, match="a 4096 x 16 video is outside what vidscope reads"):
        Decoder(path)


def test_a_file_the_demuxer_gives_up_on_says_so(synth_case, monkeypatch):
    import av

    path, _ = synth_case("mp4")
    decoder = Decoder(path)

    def broken(*streams):  # a stand-in for a file damaged past repair from its first packet
        raise av.InvalidDataError(1094995529, "Invalid data found when processing input")

    monkeypatch.setattr(decoder, "_container", type("C", (), {"demux": staticmethod(broken), "close": lambda self: None,
                                                              "streams": decoder._container.streams})())
    assert list(decoder._demux([])) == []
    assert decoder.stats.gave_up.startswith("gave up after 1001 demux errors")


@pytest.mark.parametrize("second_at_s", [0, 3600])  # the clock steps back 6 s, or leaps an hour ahead
def test_a_spliced_ts_goes_on_across_its_timestamp_step_and_audio_format_change(tmp_path, second_at_s):
    # Issue 10: two TS files cat'ed together (a sender restarted within the read timeout): the
    # clock steps back 6 s (or leaps an hour: a gap that was filled with an hour of empty windows)
    # and the audio goes from 44.1 kHz stereo to 22.05 kHz mono. It used to raise ValueError at the
    # format change, and the pictures after a step back were never sampled.
    import subprocess

    from pipelines.demo.synth import Scene, Sound, build_video

    parts = []
    for name, scene, rate, channels, at in (("a", "cat", 44100, 2, 0), ("b", "coffee", 22050, 1, second_at_s)):
        build_video(tmp_path / f"{name}.mp4", (Scene(scene, 6.0),), (Sound("crowd", 1.0, 3.0),), width=320, height=240)
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / f"{name}.mp4"), "-c:v", "copy", "-c:a", "aac",
                        "-ar", str(rate), "-ac", str(channels), "-output_ts_offset", str(at), "-f", "mpegts",
                        str(tmp_path / f"{name}.ts")], check=True)
        parts.append((tmp_path / f"{name}.ts").read_bytes())
    spliced = tmp_path / "spliced.ts"
    spliced.write_bytes(b"".join(parts))
    segments, stats = decode_segments(spliced)
    check_contiguous(segments)
    assert stats.discontinuities == 2  # one per stream, joined on
    assert [s.span.start_ns // NS_PER_SECOND for s in segments][:6] == [0, 2, 4, 6, 8, 10]
    assert sum(len(s.frames) for s in segments) == 12  # a frame a second through both halves
    assert all(s.audio is not None for s in segments[:6])  # sound on both sides of the format change
    # After the step comes the second file's picture, where it belongs: 6 s on.
    second, _ = decode_segments(tmp_path / "b.ts")
    joined = next(s for s in segments if s.span.start_ns == 6 * NS_PER_SECOND).frames[0].astype(float)
    alone = second[0].frames[0].astype(float)
    first = segments[0].frames[0].astype(float)
    assert np.abs(joined - alone).mean() < 3 < np.abs(joined - first).mean()


def _stereo_frames(start_pts: int, count: int, rate: int = 48_000, size: int = 1024):
    from fractions import Fraction

    import av

    frames = []
    for k in range(count):
        t = (start_pts + k * size + np.arange(size)) / rate
        frame = av.AudioFrame.from_ndarray(np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)])
                                           .astype(np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, start_pts + k * size, Fraction(1, rate)
        frames.append(frame)
    return frames


def test_audio_frames_that_follow_on_are_resampled_together_as_one_at_a_time_would_be():
    import av

    from operators.media.audio import Resampler as _Resampler

    before = _stereo_frames(0, 40)
    after = _stereo_frames(40 * 1024 + 24_000, 10)  # half a second of silence between: a gap, not joined
    one_at_a_time = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    expected = np.concatenate([out.to_ndarray().reshape(-1) for f in before for out in one_at_a_time.resample(f)])

    resampler = _Resampler(RATE, origin_ns=0)
    chunks = [c for f in before + after for c in resampler.push(f)] + [resampler.flush()]
    # 40 frames in runs of a third of a second (16 frames: 3 calls, the last cut short by the
    # gap), then the 10 after it with the flush
    assert len(chunks) == 4
    joined = np.concatenate([c.samples for c in chunks[:3]])
    assert chunks[0].start_sample == 0
    assert [c.start_sample for c in chunks[1:3]] == [len(chunks[0].samples), len(chunks[0].samples) + len(chunks[1].samples)]
    np.testing.assert_array_equal(joined, expected)
    # after the gap: where a resampler given one frame at a time puts it (its own 1-ms delay
    # included), and every sample up to the end of the stream
    resumed = [out for f in after for out in one_at_a_time.resample(f)] + one_at_a_time.resample(None)
    assert chunks[3].start_sample == resumed[0].pts
    assert chunks[3].start_sample == pytest.approx((40 * 1024 + 24_000) / 3, abs=17)
    np.testing.assert_array_equal(chunks[3].samples, np.concatenate([out.to_ndarray().reshape(-1) for out in resumed]))


def test_a_gap_then_a_long_audio_frame_gives_both_chunks():
    from operators.media.audio import Resampler as _Resampler

    resampler = _Resampler(RATE, origin_ns=0)
    assert resampler.push(_stereo_frames(0, 1, size=4800)[0]) == []  # a tenth of a second: held
    chunks = resampler.push(_stereo_frames(48_000, 1, size=24_000)[0])  # a second later, half a second long
    assert len(chunks) == 2
    assert chunks[0].start_sample == 0 and chunks[1].start_sample == pytest.approx(RATE, abs=17)
