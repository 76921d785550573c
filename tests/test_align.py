"""The aligner on hand-made streams: every sample lands in exactly one window, where it belongs."""

import numpy as np
import pytest

from operators.media.align import Aligner
from operators.media.decode import AudioChunk, DecodedFrame
from operators.records import NS_PER_SECOND, Segment, Span, samples_between

S = NS_PER_SECOND
RATE = 16_000


def frame(t_seconds: float) -> DecodedFrame:
    return DecodedFrame(int(round(t_seconds * S)), np.full((8, 8, 3), int(t_seconds * 10) % 256, np.uint8))


def ramp_chunks(start_sample: int, count: int, chunk: int = 1024):
    """Audio whose value at sample k is k (as float), cut into decoder-sized chunks."""
    for first in range(start_sample, start_sample + count, chunk):
        n = min(chunk, start_sample + count - first)
        yield AudioChunk(first, np.arange(first, first + n, dtype=np.float32))


def run(aligner: Aligner, items) -> list[Segment]:
    out = []
    for item in items:
        out += aligner.process([item])
    return out + aligner.flush()


def interleave(frames, chunks):
    items = [(f.pts_ns, 0, f) for f in frames] + [(c.start_sample * S // RATE, 1, c) for c in chunks]
    return [i for _, _, i in sorted(items, key=lambda x: (x[0], x[1]))]


def test_windows_cover_audio_exactly_once():
    frames = [frame(t) for t in np.arange(0, 7, 0.5)]
    chunks = list(ramp_chunks(0, 7 * RATE))
    segs = run(Aligner("s", has_video=True, has_audio=True, window_ns=2 * S), interleave(frames, chunks))
    assert [s.span for s in segs] == [Span(0, 2 * S), Span(2 * S, 4 * S), Span(4 * S, 6 * S), Span(6 * S, 7 * S)]
    audio = np.concatenate([s.audio for s in segs])
    np.testing.assert_array_equal(audio, np.arange(7 * RATE, dtype=np.float32))
    for s in segs:
        assert s.audio[0] == s.span.start_ns * RATE // S  # first sample is the one at the span start
        assert all(s.span.contains(int(t)) for t in s.frame_pts_ns)
    assert [len(s.frames) for s in segs] == [4, 4, 4, 2]


def test_late_audio_is_silence_before_it_starts():
    # Audio starting 0.478 s late (an MP4 with a 0.5 s offset and AAC priming).
    first = int(0.478 * RATE)
    frames = [frame(t) for t in range(0, 4)]
    segs = run(Aligner("s", has_video=True, has_audio=True), interleave(frames, ramp_chunks(first, 4 * RATE - first)))
    assert np.all(segs[0].audio[:first] == 0)
    assert segs[0].audio[first] == first
    assert segs[1].audio[0] == 2 * RATE


def test_gap_is_zero_filled_and_overlap_dropped():
    chunks = [AudioChunk(0, np.ones(1000, np.float32)), AudioChunk(1500, np.full(1000, 2, np.float32)),
              AudioChunk(2000, np.full(1000, 3, np.float32)), AudioChunk(3000, np.full(29000, 4, np.float32))]
    seg, = run(Aligner("s", has_video=False, has_audio=True), chunks)
    assert seg.span == Span(0, 2 * S)
    assert np.all(seg.audio[:1000] == 1) and np.all(seg.audio[1000:1500] == 0)
    assert np.all(seg.audio[1500:2500] == 2)  # the overlapping chunk lost its first 500 samples
    assert np.all(seg.audio[2500:3000] == 3)
    assert len(seg.frames) == 0


def test_video_only_and_partial_last_window():
    segs = run(Aligner("s", has_video=True, has_audio=False, window_ns=2 * S), [frame(t) for t in (0, 1, 2, 3, 4.5)])
    assert [s.audio for s in segs] == [None, None, None]
    assert segs[-1].span == Span(4 * S, int(4.5 * S) + 1)


def test_stalled_video_does_not_hold_audio_forever():
    # Video stops at 1 s while audio runs for 30 s: windows are emitted once audio is 10 s ahead.
    aligner = Aligner("s", has_video=True, has_audio=True, max_skew_ns=10 * S)
    emitted = aligner.process([frame(0), frame(1)])
    for chunk in ramp_chunks(0, 30 * RATE, chunk=RATE):
        emitted += aligner.process([chunk])
    assert len(emitted) >= 9  # windows up to 20 s are out before the end of the stream
    assert emitted[0].frames.shape[0] == 2 and emitted[1].frames.shape[0] == 0


def test_refuses_a_source_with_nothing():
    with pytest.raises(ValueError, match="neither video nor audio"):
        Aligner("s", has_video=False, has_audio=False)


def test_segment_rejects_audio_that_does_not_cover_its_span():
    with pytest.raises(ValueError, match="cover"):
        Segment("s", Span(0, S), np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0, np.int64), np.zeros(100, np.float32))
    assert samples_between(0, S) == RATE
    assert samples_between(S // 3, 2 * S // 3) + samples_between(0, S // 3) + samples_between(2 * S // 3, S) == RATE
