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

import hashlib
import logging
import os
import random
import select
import shutil
import subprocess
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import av

import numpy as np

from operators.media.decode import AudioChunk, DecodeConfig, DecodedFrame, Decoder, MediaError, Thumbnail
from operators.media.record import Recorder
from operators.records import Segment

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

    def probe_options(self) -> dict[str, str]:
        """FFmpeg options that find a stream's streams in ``probe_seconds`` (at most 1 MB)."""
        return {"analyzeduration": str(int(self.probe_seconds * 1e6)), "probesize": "1000000"}


@dataclass(frozen=True, slots=True)
class Connected:
    """Marks the start of a connection; its items follow, shifted to ``offset_ns``."""

    reconnects: int
    has_video: bool
    has_audio: bool
    first_ns: int  # stream time of its first item


LISTEN_SCHEMES = {"rtsp": ("rtsp_flags", "listen", "listen_timeout"), "rtmp": ("listen", "1", "timeout")}


def split_listen(url: str, wait_s: float) -> tuple[str, dict[str, str]]:
    """``rtsp://0.0.0.0:8554/cam?listen=1`` or ``rtmp://0.0.0.0:1935/live/cam?listen=1``: wait for a
    camera to push instead of pulling from a server. Returns the URL without our ``listen=1``
    and the FFmpeg options that make it a server waiting ``wait_s`` for the camera (then the
    reader's retry loop listens again, so a stop is never held up longer)."""
    base, sep, query = url.partition("?")
    params = [p for p in query.split("&") if p] if sep else []
    if "listen=1" not in params:
        return url, {}
    scheme = base.partition("://")[0].lower()
    if scheme not in LISTEN_SCHEMES:
        raise MediaError(f"{url}: listen=1 works for {sorted(LISTEN_SCHEMES)} URLs only")
    rest = [p for p in params if p != "listen=1"]
    flag, value, timeout = LISTEN_SCHEMES[scheme]
    return base + ("?" + "&".join(rest) if rest else ""), {flag: value, timeout: str(max(1, round(wait_s)))}


class BridgePipe:
    """A readable file over an ``ffmpeg`` subprocess that receives what PyAV cannot (SRT: PyAV's
    FFmpeg has no libsrt) and writes it to stdout as MPEG-TS, stream copy. ``read`` gives up after
    ``timeout_s`` without data (an ``OSError``, like a network read timeout); ``close`` kills the
    process outright (ffmpeg ignores SIGTERM while it waits on the network)."""

    def __init__(self, url: str, timeout_s: float, *, open_timeout_s: float = 10.0,
                 probe_options: dict[str, str] | None = None, ffmpeg: str = "ffmpeg") -> None:
        exe = shutil.which(ffmpeg)
        if exe is None:
            raise MediaError(f"{url}: reading SRT needs the ffmpeg program (with libsrt) on PATH")
        self.url, self.timeout_s, self.open_timeout_s = url, timeout_s, open_timeout_s
        self._started = False
        probe = [x for k, v in (probe_options or {}).items() for x in (f"-{k}", v)] + ["-fflags", "nobuffer"]
        self.process = subprocess.Popen([exe, "-nostdin", "-loglevel", "error", *probe, "-i", url, "-map", "0:v?",
                                         "-map", "0:a?", "-c", "copy", "-f", "mpegts", "pipe:1"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def read(self, size: int = -1) -> bytes:
        fd = self.process.stdout.fileno()
        timeout = self.timeout_s if self._started else self.open_timeout_s  # the first bytes wait for the connection
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise OSError(f"{self.url}: no data for {timeout} s")
        self._started = True
        return os.read(fd, size if size and size > 0 else 1 << 16)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


def hls_ended(url: str, timeout_s: float) -> bytes | None:
    """For an HLS media playlist (http(s)://....m3u8) that has ended (``#EXT-X-ENDLIST``): a digest
    of it; None for anything else, or when it cannot be fetched."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.split("?")[0].lower().endswith(".m3u8"):
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read(4 << 20)
    except (OSError, ValueError):
        return None
    return hashlib.blake2b(text, digest_size=16).digest() if b"#EXT-X-ENDLIST" in text else None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Marks the end of a connection (all its items came before): what is buffered can go out."""

    reason: str


def udp_options(url: str) -> str:
    """A UDP URL with a receive buffer large enough for 1080p bursts, tolerant of overruns."""
    if not url.startswith("udp://") or "fifo_size" in url:
        return url
    return url + ("&" if "?" in url else "?") + "fifo_size=1000000&overrun_nonfatal=1"


class LiveReader:
    """Iterate ``Connected`` markers, re-anchored decoder items and ``Disconnected`` markers until
    ``stop`` is set (or the backoff's attempts run out, then ``MediaError``)."""

    def __init__(self, url: str, decode: DecodeConfig = DecodeConfig(), config: LiveConfig = LiveConfig(), *,
                 stop: threading.Event | None = None, anchor_wall_ns: int | None = None,
                 clock: Callable[[], int] = time.time_ns, seed: int | None = None, resume_after_ns: int = 0,
                 recorder: Recorder | None = None) -> None:
        """``anchor_wall_ns``: the wall-clock time of stream time 0, when resuming a stream read
        before (a restarted worker continues its clock). ``resume_after_ns``: where what is already
        stored of the stream ends: nothing is placed before it, even when the wall clock stepped
        back while vidscope was down, so no segment id is reused and no history overwritten.
        ``recorder``: keeps every packet read, on the same clock (``operators.media.record``)."""
        self.url = udp_options(url)
        self.recorder = recorder
        self.decode = decode
        self.config = config
        self.stop = stop or threading.Event()
        self.clock = clock
        self.rng = random.Random(seed)
        self.anchor_wall_ns = anchor_wall_ns
        self.last_ns = resume_after_ns - 1
        self.reconnects = 0
        self.outage_ns = 0
        """Stream time between one connection's last item and the next one's first, summed: what
        the stream lost to outages (times follow the wall clock, so an outage is a hole, not squeezed out)."""
        self.damaged_packets = 0
        self._past_jumps = 0
        self._decoder: Decoder | None = None
        self._ended_playlist: bytes | None = None

    def __iter__(self) -> Iterator[Connected | Item]:
        attempt = 0
        connections = 0
        while not self.stop.is_set():
            if self._ended_playlist is not None and hls_ended(self.url, self.config.open_timeout_s) == self._ended_playlist:
                # An ended HLS playlist reads as a recording: opening it again would replay it.
                attempt += 1
                if not self._wait(attempt, "the HLS playlist has ended (#EXT-X-ENDLIST) and not changed", quiet=True):
                    return
                continue
            try:
                decoder = self._open()
            except MediaError as exc:
                attempt += 1
                if not self._wait(attempt, f"cannot open: {exc}"):
                    return
                continue
            offset_ns = None
            self._decoder = decoder
            if self.recorder is not None:
                self.recorder.begin(decoder.streams, decoder.origin_ns)
                decoder.on_packet = self.recorder.packet
            with decoder:
                try:
                    for item in decoder:
                        if self.stop.is_set():
                            return
                        if offset_ns is None:
                            offset_ns = self._offset(_time_ns(item, self.decode.sample_rate))
                            if self.recorder is not None:
                                self.recorder.anchor(offset_ns)
                            if connections:
                                self.reconnects += 1
                            connections += 1
                            attempt = 0
                            first = _shift(item, offset_ns, self.decode.sample_rate)
                            if connections > 1:
                                self.outage_ns += max(0, _time_ns(first, self.decode.sample_rate) - self.last_ns)
                            yield Connected(self.reconnects, decoder.has_video, decoder.has_audio,
                                            _time_ns(first, self.decode.sample_rate))
                        shifted = _shift(item, offset_ns, self.decode.sample_rate)
                        self.last_ns = max(self.last_ns, _time_ns(shifted, self.decode.sample_rate))
                        yield shifted
                    reason = "the stream ended"
                    self._ended_playlist = hls_ended(self.url, self.config.open_timeout_s)
                except (av.FFmpegError, OSError) as exc:  # read timeout (ExitError), reset, ...
                    reason = f"{type(exc).__name__}: {exc}"
                finally:
                    if self.recorder is not None:
                        self.recorder.end()
                    self.damaged_packets += decoder.stats.damaged_packets
                    self._past_jumps += decoder.stats.discontinuities
                    self._decoder = None
            if offset_ns is not None:
                yield Disconnected(reason)
            attempt += 1
            if not self._wait(attempt, reason):
                return

    @property
    def timestamp_jumps(self) -> int:
        """Discontinuities inside connections (a sender restarted within the read timeout, a TS
        splice), joined on by the decoder so the stream goes on: for the status."""
        current = self._decoder
        return self._past_jumps + (current.stats.discontinuities if current is not None else 0)

    def _open(self) -> Decoder:
        options = self.config.probe_options()
        if self.url.lower().startswith("srt://"):
            pipe = BridgePipe(self.url, self.config.read_timeout_s, open_timeout_s=self.config.open_timeout_s,
                              probe_options=self.config.probe_options())
            try:
                decoder = Decoder(pipe, self.decode, options=options, format="mpegts")
            except (MediaError, OSError) as exc:
                pipe.close()
                raise MediaError(f"{self.url}: {exc}") from None
            decoder.on_close = pipe.close
            return decoder
        url, listen = split_listen(self.url, self.config.open_timeout_s)
        return Decoder(url, self.decode, options={**options, **listen},
                       timeout_s=(self.config.open_timeout_s, self.config.read_timeout_s))

    def _offset(self, first_ns: int) -> int:
        """Shift that puts a connection's first item at its arrival on the anchored clock."""
        now = self.clock()
        if self.anchor_wall_ns is None:
            self.anchor_wall_ns = now
        return max(now - self.anchor_wall_ns, self.last_ns + 1) - first_ns

    def _wait(self, attempt: int, reason: str, *, quiet: bool = False) -> bool:
        backoff = self.config.backoff
        if backoff.max_attempts is not None and attempt > backoff.max_attempts:
            raise MediaError(f"{self.url}: gave up after {attempt - 1} attempts ({reason})")
        delay = backoff.delay_s(attempt - 1, self.rng)
        log.log(logging.INFO if quiet and attempt > 1 else logging.WARNING, "%s: %s; reconnect attempt %d in %.1f s",
                self.url, reason, attempt, delay)
        return not self.stop.wait(delay)


def connections(items: Iterable[Connected | Disconnected | Item]) -> Iterator[tuple[Connected, Iterator[Item]]]:
    """A ``LiveReader``'s flat iteration, one connection at a time: its ``Connected`` marker and an
    iterator of its items, which ends where the connection did (what the caller leaves unread of
    it is skipped before the next one)."""
    it = iter(items)
    marker = next(it, None)
    while marker is not None:
        if not isinstance(marker, Connected):
            marker = next(it, None)
            continue
        ended: list = []

        def body() -> Iterator[Item]:
            for item in it:
                if isinstance(item, (Connected, Disconnected)):
                    ended.append(item)
                    return
                yield item

        rest = body()
        yield marker, rest
        for _ in rest:
            pass
        marker = ended[0] if ended else None


def _time_ns(item: Item, sample_rate: int) -> int:
    if isinstance(item, AudioChunk):
        return item.start_sample * 1_000_000_000 // sample_rate
    return item.pts_ns


def _shift(item: Item, offset_ns: int, sample_rate: int) -> Item:
    if isinstance(item, AudioChunk):
        return AudioChunk(item.start_sample + round(offset_ns * sample_rate / 1_000_000_000), item.samples)
    return type(item)(item.pts_ns + offset_ns, item.image)


class SegmentQueue:
    """Segments read but not yet taken by the encoders, bounded, with an explicit overload policy.

    ``"drop"`` (a camera, which cannot wait): past half full, a new segment keeps only its middle
    frame (fewer frames sampled); when full, the oldest waiting segment is dropped. Both are
    counted. ``"block"`` (a replayable log such as Kafka, which can): ``put`` waits for room, so
    the reader slows down to the encoders' pace and nothing is thinned or dropped. Thread-safe."""

    def __init__(self, max_segments: int, policy: str = "drop") -> None:
        if max_segments < 2:
            raise ValueError(f"a live queue needs room for at least 2 segments, got {max_segments}")
        if policy not in ("drop", "block"):
            raise ValueError(f"policy must be 'drop' or 'block', got {policy!r}")
        self.policy = policy
        self.max_segments = max_segments
        self.thinned = 0
        self.dropped = 0
        self._items: deque[Segment] = deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, segment: Segment) -> None:
        with self._cond:
            while self.policy == "block" and len(self._items) >= self.max_segments and not self._closed:
                self._cond.wait(0.5)
            if len(self._items) >= self.max_segments:
                self._items.popleft()
                self.dropped += 1
            if self.policy == "drop" and len(self._items) >= self.max_segments // 2 and len(segment.frames) > 1:
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
            if not self._items:
                return None
            self._cond.notify_all()  # room for a blocked put
            return self._items.popleft()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


def thinned(segment: Segment) -> Segment:
    """The segment with its middle frame only: the cheapest degradation that still sees it."""
    middle = len(segment.frames) // 2
    return Segment(segment.source_id, segment.span, np.ascontiguousarray(segment.frames[middle:middle + 1]),
                   segment.frame_pts_ns[middle:middle + 1].copy(), segment.audio, segment.sample_rate, segment.meta,
                   segment.thumbnails, segment.thumbnail_pts_ns)
