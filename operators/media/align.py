"""Cut a decoded stream into fixed windows of frames plus the audio that covers each exactly.

Windows are ``[k * window_ns, (k + 1) * window_ns)`` on the source clock. A window is emitted
once both streams have moved past its end; when one stream stalls or has ended (video shorter
than audio, a camera that stops sending frames), it is given up on after ``max_skew_ns`` so
memory stays bounded. Missing audio inside a window (audio that starts late, gaps) is silence;
audio already covered is dropped, so consecutive windows share no sample and miss none.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from operators.base import Operator, Resources
from operators.media.decode import AudioChunk, DecodedFrame, Thumbnail
from operators.records import AUDIO_SAMPLE_RATE, NS_PER_SECOND, Segment, Span, sample_index


class Aligner(Operator[DecodedFrame | Thumbnail | AudioChunk, Segment]):
    """Stateful: ``process`` takes decoded items in demux order and returns the windows they
    complete; ``flush`` returns the rest, the last one possibly shorter than a window."""

    name = "align"

    def __init__(self, source_id: str, *, has_video: bool, has_audio: bool, window_ns: int = 2 * NS_PER_SECOND,
                 max_skew_ns: int = 10 * NS_PER_SECOND, tail_ns: int = 100_000_000, sample_rate: int = AUDIO_SAMPLE_RATE,
                 meta: Mapping[str, object] | None = None, resources: Resources | None = None, start_ns: int = 0) -> None:
        """``start_ns``: where the first window starts (a live stream's reconnection resumes the
        clock there); anything earlier is dropped."""
        super().__init__(resources=resources, batch_size=1)
        if window_ns <= 0:
            raise ValueError(f"window must be positive, got {window_ns} ns")
        if not (has_video or has_audio):
            raise ValueError(f"{source_id}: nothing to align, the source has neither video nor audio")
        self.source_id = source_id
        self.window_ns = int(window_ns)
        self.max_skew_ns = int(max_skew_ns)
        self.tail_ns = int(tail_ns)
        self.sample_rate = sample_rate
        self.has_video = has_video
        self.has_audio = has_audio
        self.meta = dict(meta or {})
        self._window_start_ns = int(start_ns)
        self._frames: list[DecodedFrame] = []
        self._frame_shape: tuple[int, ...] = (0, 0, 3)
        self._thumbs: list[Thumbnail] = []
        self._thumb_shape: tuple[int, ...] = (1, 1, 3)
        self._video_watermark_ns = -1  # newest frame time seen
        self._audio: list[np.ndarray] = []
        self._audio_base = sample_index(self._window_start_ns, sample_rate)  # first buffered sample (== window start)
        self._audio_end = self._audio_base  # one past the last buffered sample

    @classmethod
    def default_resources(cls) -> Resources:
        return Resources(cpus=0.05, memory_mb=256)

    @property
    def emit_delay_ns(self) -> int:
        """How late after a moment it may be emitted: a window plus the stream skew it waits for."""
        return self.window_ns + self.max_skew_ns

    def process(self, batch: Iterable[DecodedFrame | Thumbnail | AudioChunk]) -> list[Segment]:
        for item in batch:
            if isinstance(item, (DecodedFrame, Thumbnail)):
                self._push_frame(item)
            else:
                self._push_audio(item)
        return self._emit_ready()

    def flush(self, video_end_ns: int | None = None) -> list[Segment]:
        """Emit everything left, the last window possibly shorter.

        ``video_end_ns`` is where the video stream ends (last frame time plus its duration). Audio
        running past it by less than ``tail_ns`` is codec padding (AAC decoders return up to 1024
        samples after the end) and is dropped rather than becoming a window of a few ms; audio
        that really outlasts the video is kept whole."""
        audio_end_ns = -(-self._audio_end * NS_PER_SECOND // self.sample_rate) if self.has_audio else 0
        video_end_ns = video_end_ns if video_end_ns is not None else self._video_watermark_ns + 1
        if self.has_video and self.has_audio and 0 < audio_end_ns - video_end_ns < self.tail_ns:
            stop_ns = video_end_ns
        else:
            stop_ns = max(audio_end_ns, video_end_ns if self.has_video else 0)
        out: list[Segment] = []
        while self._window_start_ns < stop_ns:
            out.append(self._cut(min(self._window_start_ns + self.window_ns, stop_ns)))
        return out

    def _push_frame(self, frame: DecodedFrame | Thumbnail) -> None:
        if frame.pts_ns < self._window_start_ns:
            return  # before the first window (negative PTS) or already emitted
        (self._frames if isinstance(frame, DecodedFrame) else self._thumbs).append(frame)
        self._video_watermark_ns = max(self._video_watermark_ns, frame.pts_ns)

    def _push_audio(self, chunk: AudioChunk) -> None:
        samples, start = chunk.samples, chunk.start_sample
        if start < self._audio_end:  # overlap with what is buffered or already emitted
            samples = samples[self._audio_end - start:]
            start = self._audio_end
        if not len(samples):
            return
        if start > self._audio_end:  # a gap: silence
            self._audio.append(np.zeros(start - self._audio_end, np.float32))
        self._audio.append(samples)
        self._audio_end = start + len(samples)

    def _emit_ready(self) -> list[Segment]:
        out: list[Segment] = []
        while True:
            end_ns = self._window_start_ns + self.window_ns
            audio_ns = self._audio_end * NS_PER_SECOND // self.sample_rate
            video_done = not self.has_video or self._video_watermark_ns >= end_ns
            audio_done = not self.has_audio or self._audio_end >= sample_index(end_ns, self.sample_rate)
            if not video_done and self.has_audio and audio_ns - end_ns >= self.max_skew_ns:
                video_done = True  # video stalled or ended while audio runs on
            if not audio_done and self.has_video and self._video_watermark_ns - end_ns >= self.max_skew_ns:
                audio_done = True
            if not (video_done and audio_done):
                return out
            out.append(self._cut(end_ns))

    def _cut(self, end_ns: int) -> Segment:
        span = Span(self._window_start_ns, end_ns)
        self._frames, frames, pts, self._frame_shape = _take_pictures(self._frames, end_ns, self._frame_shape)
        self._thumbs, thumbs, thumb_pts, self._thumb_shape = _take_pictures(self._thumbs, end_ns, self._thumb_shape)
        audio = self._take_audio(sample_index(end_ns, self.sample_rate)) if self.has_audio else None
        self._window_start_ns = end_ns
        return Segment(self.source_id, span, frames, pts, audio, self.sample_rate, dict(self.meta), thumbs, thumb_pts)

    def _take_audio(self, end_sample: int) -> np.ndarray:
        count = end_sample - self._audio_base
        buffered = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
        if len(buffered) >= count:
            out, rest = buffered[:count], buffered[count:]
        else:
            out = np.concatenate([buffered, np.zeros(count - len(buffered), np.float32)])
            rest = np.zeros(0, np.float32)
        self._audio = [rest] if len(rest) else []
        self._audio_base = end_sample
        self._audio_end = max(self._audio_end, end_sample)
        return np.ascontiguousarray(out, dtype=np.float32)


def _take_pictures(buffered: list, end_ns: int, shape: tuple[int, ...]) -> tuple[list, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Split ``buffered`` at ``end_ns``: (kept, images before it stacked, their times, picture
    shape). An empty stack keeps the shape known so far, so it still concatenates with full ones."""
    inside = [f for f in buffered if f.pts_ns < end_ns]
    kept = [f for f in buffered if f.pts_ns >= end_ns]
    if not inside:
        return kept, np.zeros((0, *shape), np.uint8), np.zeros(0, np.int64), shape
    images = np.stack([f.image for f in inside])
    return kept, images, np.array([f.pts_ns for f in inside], np.int64), images.shape[1:]


QUIET_AFTER = "quiet_after"
"""Segment meta set on the last window before a stream went quiet (its connection dropped, a
Kafka stream idled): nothing follows it soon, so what waits on a look-ahead (the highlight
scorer, an open highlight moment) should not wait for the stream to come back."""

Item = DecodedFrame | Thumbnail | AudioChunk


def windows(items: Iterable[Item], aligner: Aligner | Callable[[Item], Aligner], *, batch: int = 8,
            video_end_ns: Callable[[], int | None] = lambda: None, quiet_at_end: bool = False) -> Iterator[Segment]:
    """The decode->align loop every source shares: the windows of ``items`` as they complete, then
    the rest when they end (``flush``, told where the video ended by ``video_end_ns()``).

    ``aligner`` may be a function of the first item (a stream whose first window depends on its
    first timestamp); no item, no aligner, no window. ``quiet_at_end`` marks the last window of the
    final batch ``QUIET_AFTER`` (a connection or an epoch ended: nothing follows soon)."""
    pending: list[Item] = []
    for item in items:
        if not isinstance(aligner, Aligner):
            aligner = aligner(item)
        pending.append(item)
        if len(pending) >= batch:
            yield from aligner.process(pending)
            pending = []
    if not isinstance(aligner, Aligner):
        return
    last = aligner.process(pending) + aligner.flush(video_end_ns())
    if quiet_at_end and last:
        last[-1] = replace(last[-1], meta={**last[-1].meta, QUIET_AFTER: True})
    yield from last
