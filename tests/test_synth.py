"""pipelines.demo.synth against itself: what PyAV reads from each test file is what its truth says."""

import av
import numpy as np
import pytest

from media import CASES, decode_audio, find_markers, frame_times
from pipelines.demo.synth import GroundTruth, Recording, Scene, Sound, Speech, bench_script, build_audio, build_video, demo_script, truth_path

pytest_plugins = ["media_fixtures"]

WITH_AUDIO = [name for name in CASES if name != "video_only"]
WITH_VIDEO = [name for name in CASES if not name.startswith("audio_only")]


@pytest.mark.parametrize("name", WITH_AUDIO)
def test_markers_decode_where_the_truth_puts_them(synth_case, name):
    path, truth = synth_case(name)
    samples, first_seconds, rate = decode_audio(path)
    assert rate == truth.sample_rate
    found = [first_seconds + i / rate for i in find_markers(samples, rate, len(truth.marker_times_seconds))]
    expected = [truth.start_seconds + t for t in truth.marker_times_seconds]
    assert np.allclose(found, expected, rtol=0, atol=truth.timestamp_tolerance_seconds), (found, expected)


@pytest.mark.parametrize("name", WITH_AUDIO)
def test_audio_spans_the_content(synth_case, name):
    """Decoded audio runs from the stream start the truth states to the content's end, plus at
    most one AAC frame of encoder padding that decoders return."""
    path, truth = synth_case(name)
    samples, first_seconds, rate = decode_audio(path)
    tolerance = truth.timestamp_tolerance_seconds
    assert first_seconds == pytest.approx(truth.audio_stream_start_seconds, abs=tolerance)
    end_seconds = first_seconds + len(samples) / rate - truth.start_seconds
    assert truth.duration_seconds - tolerance <= end_seconds <= truth.duration_seconds + truth.audio_priming_samples / rate + tolerance


@pytest.mark.parametrize("name", WITH_VIDEO)
def test_frames_are_where_the_truth_says(synth_case, name):
    path, truth = synth_case(name)
    times = np.array(frame_times(path)) - truth.start_seconds
    expected = truth.frame_times_seconds or np.arange(truth.frame_count) / truth.frames_per_second
    assert len(times) == truth.frame_count
    assert np.allclose(times, expected, rtol=0, atol=truth.timestamp_tolerance_seconds)


@pytest.mark.parametrize("name", list(CASES))
def test_streams_and_container_start_where_the_truth_says(synth_case, name):
    path, truth = synth_case(name)
    tolerance = truth.timestamp_tolerance_seconds
    with av.open(str(path)) as container:
        assert len(container.streams.video) == (truth.width is not None)
        assert len(container.streams.audio) == (truth.sample_rate is not None)
        if container.streams.video:
            video = container.streams.video[0]
            assert (video.codec_context.width, video.codec_context.height) == (truth.width, truth.height)
            assert float(video.start_time * video.time_base) == pytest.approx(truth.start_seconds, abs=tolerance)
        if path.suffix != ".wav":  # WAV has no timestamps at all
            assert container.start_time / av.time_base == pytest.approx(truth.container_start_seconds, abs=tolerance)


def test_variable_frame_rate_has_irregular_gaps(synth_case):
    _, truth = synth_case("vfr")
    gaps = np.round(np.diff(truth.frame_times_seconds) * truth.frames_per_second).astype(int)
    assert set(gaps) == {1, 2, 3}


def test_keyframes_every_gop_frames(synth_case):
    path, truth = synth_case("fixed_gop")
    with av.open(str(path)) as container:
        packets = sorted((p for p in container.demux(video=0) if p.pts is not None), key=lambda p: p.pts)
    keys = [i for i, packet in enumerate(packets) if packet.is_keyframe]
    assert keys == list(range(0, truth.frame_count, truth.keyframe_interval_frames))


def test_shot_boundaries_are_the_largest_frame_changes(synth_case):
    path, truth = synth_case("mp4")
    with av.open(str(path)) as container:
        gray = np.stack([f.to_ndarray(format="gray").astype(np.int16) for f in container.decode(video=0)])
    change = np.abs(np.diff(gray, axis=0)).mean(axis=(1, 2))  # change[k]: frame k -> k + 1
    cuts = sorted(int(k) + 1 for k in np.argsort(change)[-(len(truth.shots) - 1) :])
    assert cuts == [round(shot.start_seconds * truth.frames_per_second) for shot in truth.shots[1:]]
    assert np.median(change) > 0.5, "the camera should move within a shot"


def test_sounds_are_loud_where_the_truth_says_and_silent_elsewhere(synth_case):
    path, truth = synth_case("mp4")
    samples, first_seconds, rate = decode_audio(path)

    def rms(start_seconds, end_seconds):
        part = samples[round((start_seconds - first_seconds) * rate) : round((end_seconds - first_seconds) * rate)]
        return float(np.sqrt(np.mean(part**2)))

    for event in [*truth.speech, *truth.sounds]:
        assert rms(event.start_seconds, event.end_seconds) > 0.05, event
    marker = truth.marker_times_seconds[0]
    assert rms(0.1, marker - 0.05) < 0.002
    assert rms(marker + 0.1, truth.speech[0].start_seconds - 0.05) < 0.002


def test_truth_round_trips_through_its_json(synth_case):
    for name in ("vfr", "audio_only_m4a"):
        path, truth = synth_case(name)
        assert truth_path(path).exists()
        assert GroundTruth.load(path) == truth


def test_damaged_media_are_damaged_as_described(synth_case, damaged_media):
    source, truth = synth_case("mp4_faststart")
    assert damaged_media("truncated").stat().st_size == source.stat().st_size * 6 // 10
    assert truth.frame_count // 3 < decodable_frames(damaged_media("truncated")) < truth.frame_count
    assert truth.frame_count // 2 < decodable_frames(damaged_media("garbage_middle")) < truth.frame_count
    for kind in ("garbage", "empty"):
        with pytest.raises(av.error.InvalidDataError):
            av.open(str(damaged_media(kind)))
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(damaged_media("truncated", case="mp4")))  # its index was in the lost 40%
    assert not damaged_media("missing").exists()
    middle = damaged_media("garbage_middle").read_bytes()
    assert len(middle) == source.stat().st_size and middle != source.read_bytes()


def decodable_frames(path) -> int:
    """Frames a reader recovers when it skips the packets that fail to decode."""
    count = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                count += len(packet.decode())
            except av.error.InvalidDataError:
                pass
    return count


def test_bad_scripts_are_refused_before_rendering(tmp_path):
    with pytest.raises(ValueError, match="no photo named"):
        Scene("unicorn", 1.0)
    with pytest.raises(ValueError, match="runs past the end"):
        build_video(tmp_path / "a.mp4", [Scene("cat", 1.0)], [Sound("crowd", 0.5, 1.0)])
    with pytest.raises(ValueError, match="before the audio track"):
        build_video(tmp_path / "a.mp4", [Scene("cat", 2.0)], [Speech("hello", 0.1)], audio_offset_seconds=0.5)
    with pytest.raises(ValueError, match="no edit lists"):
        build_video(tmp_path / "a.ts", [Scene("cat", 1.0)], start_seconds=0.0)
    with pytest.raises(ValueError, match="holds no video"):
        build_video(tmp_path / "a.wav", [Scene("cat", 1.0)])
    with pytest.raises(ValueError, match="WAV has no timestamps"):
        build_audio(tmp_path / "a.wav", [], duration_seconds=1.0, start_seconds=1.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("duration_seconds", [48.0, 180.0, 1800.0])
def test_demo_and_bench_scripts_fit_their_length(duration_seconds):
    script = demo_script() if duration_seconds == 48.0 else bench_script(duration_seconds)
    assert script.duration_seconds == duration_seconds
    assert {"cat", "coffee", "rocket"} <= {scene.photo for scene in script.scenes}
    assert any(isinstance(e, Speech) for e in script.sounds) and any(isinstance(e, Sound) and e.kind == "crowd" for e in script.sounds)
    ends = [e.at_seconds + getattr(e, "duration_seconds", 3.0) for e in script.sounds]  # phrases last < 3 s
    assert max(ends) <= duration_seconds


def test_real_recordings_are_placed_at_their_gain_and_spanned_where_they_sound(tmp_path):
    horn = "/usr/share/games/heroes/sfx/claxon.wav"  # 0.78 s of car horn
    sounds = (Recording(horn, 0.0, gain_db=-30, background=True), Recording(horn, 1.0, "car horn", "horn"),
              Recording(horn, 3.0, "car horn", "horn", duration_seconds=1.5, gain_db=-12))
    truth = build_audio(tmp_path / "horns.wav", sounds, duration_seconds=5.0, sample_rate=16_000)
    loud, quiet = truth.sounds
    assert (loud.label, loud.kind, quiet.gain_db) == ("car horn", "horn", -12)
    assert 1.0 <= loud.start_seconds < 1.1 and 0.5 < loud.end_seconds - loud.start_seconds < 0.8  # its quiet ends cut
    assert quiet.end_seconds - quiet.start_seconds == pytest.approx(1.5)  # looped to the length asked
    audio, _, _ = decode_audio(tmp_path / "horns.wav")
    peak = [np.abs(audio[round(a * 16_000):round(b * 16_000)]).max() for a, b in ((loud.start_seconds, loud.end_seconds),
                                                                                    (quiet.start_seconds, quiet.end_seconds))]
    assert peak[0] == pytest.approx(0.6, abs=0.05) and peak[1] == pytest.approx(0.6 * 10 ** (-12 / 20), abs=0.05)
    bed = np.abs(audio[round(2.0 * 16_000):round(2.9 * 16_000)]).max()  # between the two: only the room tone
    assert 0.005 < bed < 0.05  # -30 dB of 0.6 = 0.019
    with pytest.raises(ValueError, match="hand-written label"):
        Recording(horn, 0.0)
