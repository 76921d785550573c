"""Streaming decode with PyAV: sampled frames scaled by the decoder, audio at 16 kHz mono.

One demux pass reads both streams. Times come from each stream's PTS and ``time_base``, shifted
by the container's start time so that both streams share one clock starting near 0 (MPEG-TS
starts at e.g. 1.4667 s; an MP4 whose audio starts late keeps that lateness). Frames are picked
by timestamp, not index (variable frame rate is common): for every sample instant
``k / frames_per_second`` the first frame shown at or after it. Only picked frames are converted,
and the conversion scales as it converts (YUV 1080p -> RGB 224 in one swscale pass), never a
full-size RGB frame. A damaged packet is skipped and counted; only an unopenable file raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Literal

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from operators.media.audio import AudioChunk, Resampler
from operators.records import AUDIO_SAMPLE_RATE, NS_PER_SECOND, pts_to_ns

log = logging.getLogger(__name__)


class MediaError(ValueError):
    """A source that cannot be decoded at all (missing, empty, not media). Says why in words."""


MIN_FPS, MAX_FPS = 0.01, 30.0
"""Frames sampled per second: one a 100 s at least, 30 at most (every frame of most video)."""
MAX_DEMUX_ERRORS = 1000
"""A file whose demuxer fails this many times is damaged past repair from there: what was decoded
before is kept and the source is reported failed, with the reason."""
MAX_PIXELS = 8192 * 8192
MAX_ASPECT = 8.0
"""Videos larger than 8192 x 8192 pixels, or more than 8 times wider than high (or the reverse),
are refused: scaled to 224 px on the short side, an 8192 x 16 picture would be 114,688 px long."""
LOCAL_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,mpegvideo,flv,ogg,wav,w64,mp3,aac,flac,asf,"
                 "mxf,h264,hevc,m4v,mjpeg,ivf,nut,caf,aiff,au,amr,dv,rm,yuv4mpegpipe,gif")
"""The demuxers a local file may use: media containers and raw streams. Not playlists (hls,
concat, ffconcat) or anything else that opens *other* files or URLs named inside the file: a
".mp4" that is an HLS playlist pointing at /etc/passwd or at a host on the network is refused."""


@dataclass(frozen=True, slots=True)
class DecodeConfig:
    frames_per_second: float = 1.0
    """Sampling rate of frames, by timestamp. 1/s is plenty for labels; raise it for motion."""
    frame_short_side: int = 224
    """Sampled frames are scaled so their short side has this many pixels (aspect kept)."""
    sample_rate: int = AUDIO_SAMPLE_RATE
    threads: int = 0
    """Decoder threads; 0 lets FFmpeg choose. Frame+slice ("AUTO") threading matches ffmpeg."""
    thumbnails_per_second: float = 5.0
    """Rate of the small pictures kept for shot and motion analysis (0 turns them off). They are
    taken from frames the decoder produces anyway, never steering it, so a thumbnail may come one
    reference frame (~0.1 s) after its instant: shot boundaries are found to ~0.3 s."""
    thumbnail_size: tuple[int, int] = (64, 36)
    """Width and height of a thumbnail; converted straight from YUV by swscale (~0.2 ms each)."""
    skip_unsampled: bool = True
    """Tell the decoder to drop non-reference frames far from any sample instant: they are
    never shown to anyone, and skipping them saves a third of the decode on typical H.264."""
    sample: Literal["exact", "keyframes"] = "exact"
    """``exact``: the first frame shown at or after each sample instant (every reference frame
    is decoded to reach it). ``keyframes`` (triage): only the keyframe nearest each instant is
    decoded, nothing else, so the frames' instants are approximate (by up to half the keyframe
    interval; a camera puts one every 1-2 s) though each keeps its own true timestamp; a window
    with no keyframe near it has no picture, and thumbnails, hence shots, come from keyframes only."""

    def __post_init__(self) -> None:
        if not MIN_FPS <= self.frames_per_second <= MAX_FPS:
            raise ValueError(f"frames per second must be {MIN_FPS:g} to {MAX_FPS:g}, got {self.frames_per_second:g}")
        if self.thumbnails_per_second < 0:
            raise ValueError(f"thumbnails_per_second must not be negative, got {self.thumbnails_per_second}")
        if self.frame_short_side < 16:
            raise ValueError(f"frame_short_side must be at least 16 px, got {self.frame_short_side}")
        if self.sample not in ("exact", "keyframes"):
            raise ValueError(f"sample must be 'exact' or 'keyframes', got {self.sample!r}")


@dataclass(frozen=True, slots=True, eq=False)
class DecodedFrame:
    pts_ns: int
    image: np.ndarray  # uint8 [H, W, 3]


@dataclass(frozen=True, slots=True, eq=False)
class Thumbnail:
    pts_ns: int
    image: np.ndarray  # uint8 [h, w, 3], DecodeConfig.thumbnail_size


@dataclass(slots=True)
class DecodeStats:
    video_frames_decoded: int = 0
    frames_sampled: int = 0
    audio_samples: int = 0
    damaged_packets: int = 0
    errors: list[str] = field(default_factory=list)
    gave_up: str | None = None
    """Why decoding stopped before the end (the file is damaged past repair there), or None."""
    discontinuities: int = 0
    """Times a stream's timestamps stepped back or leapt ahead (a spliced TS, a sender restarted
    within the connection) and were joined on to what came before."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    path: str
    has_video: bool
    has_audio: bool
    duration_ns: int | None
    start_ns: int
    width: int | None
    height: int | None
    average_fps: float | None
    container: str


def _open(path: str | Path | BinaryIO, options: dict[str, str] | None = None, timeout_s: float | None = None,
          format: str | None = None) -> av.container.InputContainer:
    """``path`` may be a readable file-like object (then give its ``format``)."""
    is_path = isinstance(path, (str, Path))
    spath = _shown(path)
    options = dict(options or {})
    if is_path and "://" not in spath:
        p = Path(spath)
        if not p.exists():
            raise MediaError(f"{spath}: no such file")
        if p.is_dir():
            raise MediaError(f"{spath}: is a folder, not a media file")
        if p.stat().st_size == 0:
            raise MediaError(f"{spath}: file is empty")
        with p.open("rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith((b"#EXTM3U", b"ffconcat", b"#EXT")) or head[:5].lower() == b"file ":
            raise MediaError(f"{spath}: a playlist, not a media file (vidscope does not open the files or URLs it names)")
        # A local file is read as itself: no protocol but the file, no demuxer that opens others.
        options.setdefault("protocol_whitelist", "file")
        options.setdefault("format_whitelist", LOCAL_FORMATS)
    try:
        container = av.open(spath if is_path else path, format=format, options=options, timeout=timeout_s)
    except av.FFmpegError as exc:
        raise MediaError(f"{spath}: not readable as video or audio ({exc.strerror or exc})") from exc
    if not container.streams.video and not container.streams.audio:
        container.close()
        raise MediaError(f"{spath}: holds no video or audio stream")
    if container.streams.video:
        ctx = container.streams.video[0].codec_context
        w, h = ctx.width or 0, ctx.height or 0
        if w and h and (w * h > MAX_PIXELS or max(w, h) > MAX_ASPECT * min(w, h)):
            container.close()
            raise MediaError(f"{spath}: a {w} x {h} video is outside what vidscope reads (at most {MAX_PIXELS // 8192} x 8192 "
                             f"pixels, at most {MAX_ASPECT:g} times wider than high or the reverse)")
    return container


def _shown(path: str | Path | BinaryIO) -> str:
    """A path or URL as itself; a file-like input by its type, for messages."""
    return str(path) if isinstance(path, (str, Path)) else f"<{type(path).__name__}>"


def container_start_ns(container: av.container.InputContainer) -> int:
    # container.start_time is in AV_TIME_BASE (microseconds); it is the earliest stream start.
    return 0 if container.start_time is None else int(container.start_time) * 1000


def probe(path: str | Path) -> MediaInfo:
    """Read the header only: which streams, how long, where the clock starts."""
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        duration_ns = None if container.duration is None else int(container.duration) * 1000
        return MediaInfo(
            path=str(path),
            has_video=video is not None,
            has_audio=bool(container.streams.audio),
            duration_ns=duration_ns,
            start_ns=container_start_ns(container),
            width=video.codec_context.width if video else None,
            height=video.codec_context.height if video else None,
            average_fps=float(video.average_rate) if video is not None and video.average_rate else None,
            container=container.format.name,
        )


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Output size with the short side at ``short_side`` px, aspect kept, both even."""
    if width <= height:
        w, h = short_side, round(height * short_side / width)
    else:
        w, h = round(width * short_side / height), short_side
    return max(2, w - w % 2), max(2, h - h % 2)


class Decoder:
    """Iterate one source as decoded items in demux order: ``DecodedFrame`` and ``AudioChunk``.

    ``origin_ns`` is subtracted from every timestamp; by default the container's start time (set
    it before iterating to put the clock elsewhere). ``path`` may be a file-like object read as a
    stream (give ``format``). ``on_keyframe(t_ns, pos)`` is called for each video keyframe packet
    before it is decoded, with its time on this clock and its byte position in the input.
    ``on_packet(packet)`` sees every audio and video packet before it is decoded, timestamps
    already joined across discontinuities (a recorder keeps them: ``operators.media.record``).
    """

    def __init__(self, path: str | Path | BinaryIO, config: DecodeConfig = DecodeConfig(), *,
                 options: dict[str, str] | None = None, timeout_s: float | None = None, format: str | None = None,
                 on_keyframe: Callable[[int, int], None] | None = None,
                 on_packet: Callable[[av.Packet], None] | None = None) -> None:
        self.path = _shown(path)
        self.config = config
        self.stats = DecodeStats()
        self.on_keyframe = on_keyframe
        self.on_packet = on_packet
        self._container = _open(path, options, timeout_s, format)
        self.has_video = bool(self._container.streams.video)
        self.has_audio = bool(self._container.streams.audio)
        self.origin_ns = container_start_ns(self._container)
        self.video_end_ns: int | None = None
        """Where the video ends (last frame time plus one frame), known once iteration is done."""

    on_close: Callable[[], None] | None = None
    """Called after the container is closed (what feeds a file-like input, e.g. a subprocess)."""

    @property
    def streams(self) -> list:
        """The container's streams (templates for a stream copy)."""
        return list(self._container.streams)

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            if self.on_close is not None:
                self.on_close()

    def __enter__(self) -> "Decoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[DecodedFrame | Thumbnail | AudioChunk]:
        container = self._container
        streams = []
        video = audio = None
        if self.has_video:
            video = container.streams.video[0]
            video.thread_type = "AUTO"
            if self.config.threads:
                video.thread_count = self.config.threads
            streams.append(video)
        if self.has_audio:
            audio = container.streams.audio[0]
            streams.append(audio)
        picker = _FramePicker(self.config, self.origin_ns) if video is not None else None
        keyframes = _KeyframeChooser(picker.interval_ns) if picker is not None and self.config.sample == "keyframes" else None
        resampler = Resampler(self.config.sample_rate, self.origin_ns) if audio is not None else None

        joins: dict[int, _Join] = {}
        dropped: list[Exception] = []

        def packets() -> Iterator[av.Packet]:
            # A live source that drops raises out of the demuxer: the audio held for joining is
            # still sent (below) before the error goes up to whoever reconnects.
            try:
                yield from self._demux(streams)
            except (av.FFmpegError, OSError) as exc:
                dropped.append(exc)

        for packet in packets():
            join = joins.get(packet.stream.index)
            if join is None:
                join = joins[packet.stream.index] = _Join(packet.stream.time_base)
            if join.fix(packet):
                self.stats.discontinuities += 1
                log.warning("%s: %s timestamps jumped %+.1f s; joined on to what came before", self.path,
                            packet.stream.type, join.last_jump_ns / NS_PER_SECOND)
            if self.on_packet is not None:
                self.on_packet(packet)
            if packet.stream is video:
                if self.on_keyframe is not None and packet.is_keyframe and packet.pts is not None and packet.pos is not None \
                        and packet.pos >= 0:
                    self.on_keyframe(pts_to_ns(packet.pts, packet.time_base) - self.origin_ns, packet.pos)
                if keyframes is not None:
                    t_ns = pts_to_ns(packet.pts, packet.time_base) - self.origin_ns if packet.pts is not None else None
                    for chosen in keyframes.offer(packet, t_ns):
                        yield from picker.take(self._decode(chosen), self.stats, chosen=True)
                    continue
                if self.config.skip_unsampled:
                    picker.steer(video.codec_context, packet)
                yield from picker.take(self._decode(packet), self.stats)
            else:
                for frame in self._decode(packet):
                    for chunk in resampler.push(frame):
                        self.stats.audio_samples += len(chunk.samples)
                        yield chunk
        if picker is not None:
            self.video_end_ns = keyframes.end_ns if keyframes is not None else picker.end_ns
        if resampler is not None:
            chunk = resampler.flush()
            if chunk is not None:
                self.stats.audio_samples += len(chunk.samples)
                yield chunk
        if dropped:
            raise dropped[0]

    def _demux(self, streams) -> Iterator[av.Packet]:
        """Packets of ``streams``, including the final empty packets that flush decoders.
        A demuxer error (garbage in the middle of a file) is counted and demuxing resumes."""
        failures = 0
        while True:
            try:
                for packet in self._container.demux(streams):
                    yield packet
                return
            except (av.InvalidDataError, av.EOFError, av.MemoryError, IndexError) as exc:
                # Found by bench/fuzz.py: a damaged sample size makes the MP4 demuxer ask for more
                # memory than there is (ENOMEM, for that packet only); PyAV (18.1) raises
                # IndexError for a packet of a stream that appeared after the header (a damaged
                # TS announces one). Both are skipped like any damaged packet.
                failures += 1
                self.stats.damaged_packets += 1
                if failures > MAX_DEMUX_ERRORS:
                    self.stats.gave_up = f"gave up after {failures} demux errors ({exc})"
                    self.stats.errors.append(self.stats.gave_up)
                    return

    def _decode(self, packet: av.Packet):
        try:
            return packet.decode()
        except (av.FFmpegError, ValueError) as exc:  # any decoder complaint about this packet
            self.stats.damaged_packets += 1
            if len(self.stats.errors) < 20:
                self.stats.errors.append(f"damaged packet at pts {packet.pts}: {exc}")
            return ()


STEP_BACK_NS = NS_PER_SECOND
LEAP_AHEAD_NS = 60 * NS_PER_SECOND
"""A stream's timestamps that go back more than a second, or forward more than a minute, from one
packet to the next are a discontinuity, not time: what follows is shifted to continue from there."""


class _Join:
    """One stream's shift across its timestamp discontinuities (packets are decoded shifted)."""

    def __init__(self, time_base) -> None:
        self.time_base = time_base
        self.shift = 0  # in the stream's time base
        self.last: int | None = None  # the last packet's shifted dts (or pts)
        self.step = 1  # a typical packet duration, in the time base
        self.last_jump_ns = 0

    def fix(self, packet: av.Packet) -> bool:
        """Shift ``packet``; True when it starts a discontinuity."""
        t = packet.dts if packet.dts is not None else packet.pts
        if t is None:
            return False
        jumped = False
        if self.last is not None:
            gap_ns = pts_to_ns(t + self.shift - self.last, self.time_base)
            if gap_ns < -STEP_BACK_NS or gap_ns > LEAP_AHEAD_NS:
                self.last_jump_ns = gap_ns
                self.shift += self.last + self.step - (t + self.shift)
                jumped = True
            elif gap_ns > 0:
                self.step = t + self.shift - self.last
        if self.shift:
            if packet.pts is not None:
                packet.pts += self.shift
            if packet.dts is not None:
                packet.dts += self.shift
        self.last = t + self.shift if self.last is None else max(self.last, t + self.shift)
        return jumped


class _FramePicker:
    """Chooses, for each sample instant, the first frame shown at or after it."""

    def __init__(self, config: DecodeConfig, origin_ns: int) -> None:
        self.interval_ns = int(round(NS_PER_SECOND / config.frames_per_second))
        self.short_side = config.frame_short_side
        self.origin_ns = origin_ns
        self.next_target_ns = 0
        self.thumb_interval_ns = int(round(NS_PER_SECOND / config.thumbnails_per_second)) if config.thumbnails_per_second else 0
        self.thumb_size = config.thumbnail_size
        self.next_thumb_ns = 0
        self.last_pts_ns: int | None = None
        self.size: tuple[int, int] | None = None
        self.frame_duration_ns = 0
        self._skipping = False
        # One converter per output size, kept: a frame's own ``reformat`` builds a scaler for
        # every frame, which costs as much again as the scaling (4.4 vs 2.4 ms a 1080p frame).
        self._to_image = VideoReformatter()
        self._to_thumb = VideoReformatter()

    def steer(self, codec_context, packet: av.Packet) -> None:
        """Skip non-reference frames whose packet lies well before the next sample instant.

        Packet PTS is the frame's presentation time, so a non-reference frame more than two
        frame durations before the next target cannot be the frame we pick; reference frames are
        always decoded, so the picture at the target is still exact."""
        if packet.pts is None or self.frame_duration_ns <= 0:
            return
        t_ns = pts_to_ns(packet.pts, packet.time_base) - self.origin_ns
        skip = t_ns < self.next_target_ns - 2 * self.frame_duration_ns
        if skip != self._skipping:
            codec_context.skip_frame = "NONREF" if skip else "DEFAULT"
            self._skipping = skip

    def take(self, frames, stats: DecodeStats, *, chosen: bool = False) -> Iterator[DecodedFrame | Thumbnail]:
        """Thumbnails and sampled frames of ``frames``; ``chosen``: each frame is already the one
        an instant wants (keyframe sampling), whatever its time."""
        for frame in frames:
            stats.video_frames_decoded += 1
            if frame.pts is None:
                continue
            pts_ns = pts_to_ns(frame.pts, frame.time_base) - self.origin_ns
            if self.last_pts_ns is not None:
                if pts_ns <= self.last_pts_ns:
                    continue  # out-of-order or repeated timestamp: keep the clock monotonic
                step = pts_ns - self.last_pts_ns
                # The smallest step seen is the frame duration; skipped frames only widen steps.
                self.frame_duration_ns = step if self.frame_duration_ns == 0 else min(self.frame_duration_ns, step)
            self.last_pts_ns = pts_ns
            if self.thumb_interval_ns and pts_ns >= self.next_thumb_ns:
                width, height = self.thumb_size
                thumb = self._to_thumb.reformat(frame, width=width, height=height, format="rgb24",
                                                interpolation="AREA").to_ndarray()
                self.next_thumb_ns = (pts_ns // self.thumb_interval_ns + 1) * self.thumb_interval_ns
                yield Thumbnail(pts_ns, thumb)
            if pts_ns < self.next_target_ns and not chosen:
                continue
            if self.size is None:
                self.size = scaled_size(frame.width, frame.height, self.short_side)
            width, height = self.size
            image = self._to_image.reformat(frame, width=width, height=height, format="rgb24",
                                            interpolation="AREA").to_ndarray()
            stats.frames_sampled += 1
            # The next instant strictly after this frame: a frame serves one instant at most.
            self.next_target_ns = (pts_ns // self.interval_ns + 1) * self.interval_ns
            yield DecodedFrame(pts_ns, image)

    @property
    def end_ns(self) -> int | None:
        """Where the video stream ends: the last frame's time plus one frame duration."""
        if self.last_pts_ns is None:
            return None
        return self.last_pts_ns + max(self.frame_duration_ns, 1)


class _KeyframeChooser:
    """Keyframe sampling: which video packets to decode. Each keyframe packet waits until the
    next one is seen; it is decoded if some sample instant lies nearer to it than to that next
    one (ties to the earlier). Every other packet is never decoded."""

    def __init__(self, interval_ns: int) -> None:
        self.interval_ns = interval_ns
        self.next_ns = 0  # the first instant no keyframe serves yet
        self.pending: tuple[av.Packet, int] | None = None
        self.end_ns: int | None = None
        """Where the video ends: the latest packet's time plus its duration."""

    def offer(self, packet: av.Packet, t_ns: int | None) -> list[av.Packet]:
        if t_ns is None:
            if packet.size:  # no timestamp to place it by
                return []
            # The flush packet at the end: the last keyframe serves the instants left.
            wanted = self.pending is not None and (self.end_ns is None or self.next_ns < self.end_ns)
            return [self.pending[0], packet] if wanted else [packet]
        duration_ns = pts_to_ns(packet.duration, packet.time_base) if packet.duration else 0
        self.end_ns = max(self.end_ns or 0, t_ns + max(duration_ns, 1))
        if not packet.is_keyframe:
            return []
        out = []
        if self.pending is not None:
            before_ns = self.pending[1]
            served = False
            while self.next_ns < t_ns and self.next_ns - before_ns <= t_ns - self.next_ns:
                self.next_ns += self.interval_ns
                served = True
            if served:
                out.append(self.pending[0])
        self.pending = (packet, t_ns)
        return out


def frames_between(path: str | Path, start_ns: int, end_ns: int, config: DecodeConfig = DecodeConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The sampled frames of ``[start_ns, end_ns)`` on the source clock (as ``Decoder`` numbers it),
    found by seeking: ``(uint8 [N, H, W, 3], int64 [N] pts)``. For looking again at a moment
    already indexed (``vidscope ask``), without decoding the file from the start."""
    with _open(path) as container:
        if not container.streams.video:
            return np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin_ns = container_start_ns(container)
        target = max(0, start_ns + origin_ns) * stream.time_base.denominator // (NS_PER_SECOND * stream.time_base.numerator)
        container.seek(int(target), stream=stream, backward=True)
        picker = _FramePicker(config, origin_ns)
        picker.next_target_ns = -(-start_ns // picker.interval_ns) * picker.interval_ns
        images, times = [], []
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except (av.FFmpegError, ValueError):
                continue
            for item in picker.take(decoded, DecodeStats()):
                if isinstance(item, DecodedFrame) and start_ns <= item.pts_ns < end_ns:
                    images.append(item.image)
                    times.append(item.pts_ns)
            if picker.last_pts_ns is not None and picker.last_pts_ns >= end_ns:
                break
    if not images:
        return np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64)
    return np.stack(images), np.array(times, np.int64)
