"""Reading a live stream for as long as it lasts, reconnecting when it drops.

``LiveReader`` opens a URL with PyAV (UDP MPEG-TS, HLS, RTSP, RTMP, anything FFmpeg reads), yields
the decoder's items, and when the stream ends, stalls or cannot be opened, tries again with
exponential backoff and full jitter, forever by default, logging each attempt.

Clock. Every connection restarts the stream's PTS (a camera reboots, a sender restarts), so the
reader re-anchors: the first item ever read is stream time 0 at wall-clock ``anchor_wall_ns``; the
first item of each later connection is placed at the wall-clock time it arrived, measured from
that anchor (never earlier than anything already read). Inside a connection the stream's own PTS
rule, so B-frames keep their order (FACTS.md: wall-clock timestamps reorder them). A moment at
stream time ``t`` therefore happened at about ``anchor_wall_ns + t``, and stream times only grow.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

import av

import numpy as np

from .decode import AudioChunk, DecodeConfig, DecodedFrame, Decoder, MediaError, Thumbnail
from .records import Segment

log = logging.getLogger(__name__)

Item = DecodedFrame | Thumbnail | AudioChunk


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts: ``initial_s * 2**n`` capped at ``max_s``, each drawn uniformly from
    [0, that] (full jitter: many cameras dropping together do not reconnect in lockstep)."""

    initial_s: float = 0.5
    max_s: float = 2.0
    """Short: while the reader sleeps, a returning UDP sender's packets fall on a closed port."""
    max_attempts: int | None = None  # None: forever

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.max_s, self.initial_s * 2 ** min(attempt, 30)))


@dataclass(frozen=True, slots=True)
class LiveConfig:
    open_timeout_s: float = 10.0
    read_timeout_s: float = 3.0
    """No packet for this long and the connection counts as dropped."""
    probe_seconds: float = 0.5
    """How much of the stream FFmpeg reads to find its streams (its default, 5 s, delays every
    (re)connection by as much)."""
    backoff: Backoff = Backoff()


@dataclass(frozen=True, slots=True)
class Connected:
    """Marks the start of a connection; its items follow, shifted to ``offset_ns``."""

    reconnects: int
    has_video: bool
    has_audio: bool
    first_ns: int  # stream time of its first item


def udp_options(url: str) -> str:
    """A UDP URL with a receive buffer large enough for 1080p bursts, tolerant of overruns."""
    if not url.startswith("udp://") or "fifo_size" in url:
        return url
    return url + ("&" if "?" in url else "?") + "fifo_size=1000000&overrun_nonfatal=1"


class LiveReader:
    """Iterate ``Connected`` markers and re-anchored decoder items until ``stop`` is set (or the
    backoff's attempts run out, then ``MediaError``)."""

    def __init__(self, url: str, decode: DecodeConfig = DecodeConfig(), config: LiveConfig = LiveConfig(), *,
                 stop: threading.Event | None = None, anchor_wall_ns: int | None = None,
                 clock: Callable[[], int] = time.time_ns, seed: int | None = None) -> None:
        """``anchor_wall_ns``: the wall-clock time of stream time 0, when resuming a stream read
        before (a restarted worker continues its clock: no segment id is reused)."""
        self.url = udp_options(url)
        self.decode = decode
        self.config = config
        self.stop = stop or threading.Event()
        self.clock = clock
        self.rng = random.Random(seed)
        self.anchor_wall_ns = anchor_wall_ns
        self.last_ns = -1
        self.reconnects = 0
        self.damaged_packets = 0

    def __iter__(self) -> Iterator[Connected | Item]:
        attempt = 0
        connections = 0
        while not self.stop.is_set():
            try:
                decoder = self._open()
            except MediaError as exc:
                attempt += 1
                if not self._wait(attempt, f"cannot open: {exc}"):
                    return
                continue
            offset_ns = None
            with decoder:
                try:
                    for item in decoder:
                        if self.stop.is_set():
                            return
                        if offset_ns is None:
                            offset_ns = self._offset(_time_ns(item, self.decode.sample_rate))
                            if connections:
                                self.reconnects += 1
                            connections += 1
                            attempt = 0
                            first = _shift(item, offset_ns, self.decode.sample_rate)
                            yield Connected(self.reconnects, decoder.has_video, decoder.has_audio,
                                            _time_ns(first, self.decode.sample_rate))
                        shifted = _shift(item, offset_ns, self.decode.sample_rate)
                        self.last_ns = max(self.last_ns, _time_ns(shifted, self.decode.sample_rate))
                        yield shifted
                    reason = "the stream ended"
                except (av.FFmpegError, OSError) as exc:  # read timeout (ExitError), reset, ...
                    reason = f"{type(exc).__name__}: {exc}"
                finally:
                    self.damaged_packets += decoder.stats.damaged_packets
            attempt += 1
            if not self._wait(attempt, reason):
                return

    def _open(self) -> Decoder:
        options = {"analyzeduration": str(int(self.config.probe_seconds * 1e6)), "probesize": "1000000"}
        return Decoder(self.url, self.decode, options=options,
                       timeout_s=(self.config.open_timeout_s, self.config.read_timeout_s))

    def _offset(self, first_ns: int) -> int:
        """Shift that puts a connection's first item at its arrival on the anchored clock."""
        now = self.clock()
        if self.anchor_wall_ns is None:
            self.anchor_wall_ns = now
        return max(now - self.anchor_wall_ns, self.last_ns + 1) - first_ns

    def _wait(self, attempt: int, reason: str) -> bool:
        backoff = self.config.backoff
        if backoff.max_attempts is not None and attempt > backoff.max_attempts:
            raise MediaError(f"{self.url}: gave up after {attempt - 1} attempts ({reason})")
        delay = backoff.delay_s(attempt - 1, self.rng)
        log.warning("%s: %s; reconnect attempt %d in %.1f s", self.url, reason, attempt, delay)
        return not self.stop.wait(delay)


def _time_ns(item: Item, sample_rate: int) -> int:
    if isinstance(item, AudioChunk):
        return item.start_sample * 1_000_000_000 // sample_rate
    return item.pts_ns


def _shift(item: Item, offset_ns: int, sample_rate: int) -> Item:
    if isinstance(item, AudioChunk):
        return AudioChunk(item.start_sample + round(offset_ns * sample_rate / 1_000_000_000), item.samples)
    return type(item)(item.pts_ns + offset_ns, item.image)


class SegmentQueue:
    """Segments read but not yet taken by the encoders, bounded, with an explicit overload policy:
    past half full, a new segment keeps only its middle frame (fewer frames sampled); when full,
    the oldest waiting segment is dropped. Both are counted. Thread-safe."""

    def __init__(self, max_segments: int) -> None:
        if max_segments < 2:
            raise ValueError(f"a live queue needs room for at least 2 segments, got {max_segments}")
        self.max_segments = max_segments
        self.thinned = 0
        self.dropped = 0
        self._items: deque[Segment] = deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, segment: Segment) -> None:
        with self._cond:
            if len(self._items) >= self.max_segments:
                self._items.popleft()
                self.dropped += 1
            if len(self._items) >= self.max_segments // 2 and len(segment.frames) > 1:
                segment = thinned(segment)
                self.thinned += 1
            self._items.append(segment)
            self._cond.notify_all()

    def close(self) -> None:
        """No more segments will come; ``get`` returns None once the queue is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, timeout_s: float = 0.5) -> Segment | None:
        """The oldest segment; waits for one, None once closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait(timeout_s)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


def thinned(segment: Segment) -> Segment:
    """The segment with its middle frame only: the cheapest degradation that still sees it."""
    middle = len(segment.frames) // 2
    return Segment(segment.source_id, segment.span, np.ascontiguousarray(segment.frames[middle:middle + 1]),
                   segment.frame_pts_ns[middle:middle + 1].copy(), segment.audio, segment.sample_rate, segment.meta,
                   segment.thumbnails, segment.thumbnail_pts_ns)
