"""Decoded audio onto vidscope's sample grid: float32 mono at 16 kHz, each chunk placed by the
frames' timestamps (``Resampler``, fed by ``Decoder``)."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from operators.records import NS_PER_SECOND, pts_to_ns


@dataclass(frozen=True, slots=True, eq=False)
class AudioChunk:
    start_sample: int  # index on the 16 kHz grid of the source clock (sample k at k / rate s)
    samples: np.ndarray  # float32 mono


class Resampler:
    """Any audio to float32 mono at ``rate``, placed on the sample grid by the frames' PTS.

    Frames that follow on from each other (no gap, one format) are joined, up to ``JOIN_SECONDS``
    of audio, before they are resampled: with AAC's 1024-sample frames, 47 a second at 48 kHz,
    PyAV's cost per call (timestamps as Fractions, the filter graph's pull loop, one array per
    output) was most of the audio path, twice what the joined calls cost for the same samples.
    A live stream's audio is held back by that third of a second at most, whatever its frames."""

    JOIN_SECONDS = 1 / 3

    def __init__(self, rate: int, origin_ns: int) -> None:
        self.rate = rate
        self.origin_ns = origin_ns
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self._next_sample: int | None = None
        self._held: list[av.AudioFrame] = []
        self._held_samples = 0

    def push(self, frame: av.AudioFrame) -> list[AudioChunk]:
        chunks = [self._drain()] if self._held and not _follows(self._held[-1], frame) else []
        self._held.append(frame)
        self._held_samples += frame.samples
        if self._held_samples >= self.JOIN_SECONDS * frame.sample_rate:
            chunks.append(self._drain())
        return [chunk for chunk in chunks if chunk is not None]

    def flush(self) -> AudioChunk | None:
        return self._drain(final=True)

    def _drain(self, *, final: bool = False) -> AudioChunk | None:
        frames, self._held, self._held_samples = self._held, [], 0
        if frames and frames[0].pts is not None and self._next_sample is None:
            t_ns = pts_to_ns(frames[0].pts, frames[0].time_base) - self.origin_ns
            self._next_sample = round(t_ns * self.rate / NS_PER_SECOND)
        if len(frames) > 1:
            try:
                frames = [_joined(frames)]
            except ValueError:  # a sample format or layout PyAV cannot build frames of: one call each
                pass
        out: list[av.AudioFrame] = []
        for frame in frames:
            try:
                out += self._resampler.resample(frame)
            except ValueError:  # the audio's format changed mid-stream (a spliced TS): a resampler for the new one
                out += self._resampler.resample(None)
                self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
                out += self._resampler.resample(frame)
        if final:
            out += self._resampler.resample(None)
        return self._emit(out)

    def _emit(self, frames) -> AudioChunk | None:
        if not frames:
            return None
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32, copy=False)
        # The resampler's own output PTS (1/rate time base) already accounts for its delay and
        # for gaps in the input; fall back to counting when it gives none.
        first = frames[0]
        if first.pts is not None:
            start = round(pts_to_ns(first.pts, first.time_base) * self.rate / NS_PER_SECOND) - round(
                self.origin_ns * self.rate / NS_PER_SECOND)
        else:
            start = self._next_sample or 0
        self._next_sample = start + len(samples)
        return AudioChunk(start, samples)


def _follows(last: av.AudioFrame, frame: av.AudioFrame) -> bool:
    """``frame`` starts where ``last`` ends (within a tick), in the same format: one stream to join."""
    if (frame.format.name, frame.layout.name, frame.sample_rate) != (last.format.name, last.layout.name, last.sample_rate):
        return False
    if frame.pts is None or last.pts is None:
        return frame.pts is None and last.pts is None
    base = last.time_base
    if frame.time_base != base or base is None:
        return False
    expected = last.pts + round(last.samples * base.denominator / (last.sample_rate * base.numerator))
    return abs(frame.pts - expected) <= 1


def _joined(frames: list[av.AudioFrame]) -> av.AudioFrame:
    first = frames[0]
    joined = av.AudioFrame.from_ndarray(np.concatenate([f.to_ndarray() for f in frames], axis=1),
                                        format=first.format.name, layout=first.layout.name)
    joined.sample_rate, joined.pts = first.sample_rate, first.pts
    if first.time_base is not None:
        joined.time_base = first.time_base
    return joined
