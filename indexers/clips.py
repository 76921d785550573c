"""Clips: a span of an indexed source as an MP4 a browser plays (``vidscope export``, the API).

Times are the source's own, as search prints them (PTS minus the container's start time, the
clock ``operators.media.decode`` indexes with). The clip begins with the frame on screen at
``start`` (the last one whose PTS is at or before it) and holds every frame shown before ``end``,
so it starts and ends within one frame of the request; its clock starts at 0 on that first frame,
audio cut to the same instant.

Two ways to make one, chosen per request:

- **copy**: packets are remuxed untouched (fast, lossless). Only when the cut allows it: the
  video is H.264 without B-frames (a packet past ``end`` is then never needed by one before it)
  and a keyframe is the frame on screen at ``start``; the audio is AAC, MP3 or Opus.
- **encode**: the span is decoded from the keyframe before it and encoded again (H.264, AAC),
  dropping what lies outside. Costs about the span's decode plus an x264 ``veryfast`` encode.
  Re-encoding only the head up to the first keyframe and copying the rest would be cheaper for
  long clips, but the two parts would need one set of H.264 parameters, which a copied stream
  does not share with a new encoder; it is not done.

The file is written beside ``out_path`` and renamed into place: a failed cut leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from operators.media.decode import container_start_ns, pts_to_ns
from indexers.store import SourceInfo
from operators.media.record import INDEX_FILE, read_index
from operators.records import NS_PER_SECOND

ClipMode = Literal["auto", "copy", "encode"]
MAX_CLIP_NS = 30 * 60 * NS_PER_SECOND
"""The longest clip cut in one request (30 min): longer spans are an export of the file itself."""
_COPY_VIDEO = ("h264",)
_COPY_AUDIO = ("aac", "mp3", "opus")


@dataclass(frozen=True, slots=True)
class ClipReport:
    path: Path
    start_ns: int  # source time of the clip's first frame (its time 0); the request's start without video
    end_ns: int  # source time where the clip ends (exclusive)
    mode: Literal["copy", "encode"]
    video_frames: int


def cut_clip(uri: str, start_ns: int, end_ns: int, out_path: str | os.PathLike, *,
             mode: ClipMode = "auto") -> ClipReport:
    """Write ``[start_ns, end_ns)`` of the media at ``uri`` to ``out_path`` as MP4."""
    if start_ns < 0:
        raise ValueError(f"a clip cannot start before the source does (start {start_ns / 1e9:g} s)")
    if end_ns <= start_ns:
        raise ValueError(f"a clip's end must come after its start ({start_ns / 1e9:g} s to {end_ns / 1e9:g} s)")
    if end_ns - start_ns > MAX_CLIP_NS:
        raise ValueError(f"a clip may be at most {MAX_CLIP_NS // NS_PER_SECOND // 60} minutes long")
    out_path = Path(out_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".mp4", dir=out_path.parent)
    os.close(fd)
    try:
        cut = _Cut(uri, start_ns, end_ns)
        try:
            report = cut.write(Path(tmp), mode)
        except av.FFmpegError as exc:
            raise ValueError(f"cannot cut a clip from {uri}: {exc}") from exc
        finally:
            cut.source.close()
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ClipReport(out_path, report.start_ns, report.end_ns, report.mode, report.video_frames)


class _Cut:
    def __init__(self, uri: str, start_ns: int, end_ns: int) -> None:
        try:
            self.source = source = av.open(uri)
        except av.FFmpegError as exc:
            raise ValueError(f"cannot cut a clip from {uri}: {exc}") from exc
        self.uri = uri
        self.origin_ns = container_start_ns(source)
        self.video = source.streams.video[0] if source.streams.video else None
        self.audio = source.streams.audio[0] if source.streams.audio else None
        if self.video is None and self.audio is None:
            raise ValueError("the source has neither video nor audio")
        self.start_ns, self.end_ns = start_ns, end_ns
        rate = self.video.average_rate if self.video is not None else None
        self.frame_ns = int(NS_PER_SECOND / rate) if rate else NS_PER_SECOND // 25

    def t_ns(self, pts: int, time_base) -> int:
        return pts_to_ns(pts, time_base) - self.origin_ns

    def seek(self) -> None:
        """To the last keyframe at or before ``start``. MPEG-TS seeks land by byte position and
        may overshoot: while the first keyframe after a seek lies past ``start``, seek further
        back; at the very beginning, open the file again (a TS seek to its start time may land on
        its second keyframe)."""
        back_ns = 0
        while True:
            target_ns = max(0, self.start_ns - back_ns)
            if target_ns == 0:
                self._reopen()
                return
            where = -(-(self.origin_ns + target_ns) // 1000)  # microseconds, rounded up: a keyframe at start counts
            self.source.seek(where, backward=True, any_frame=False)
            if self.video is None:
                return
            first = next((p for p in self.source.demux(self.video) if p.pts is not None and p.is_keyframe), None)
            if first is not None and self.t_ns(first.pts, first.time_base) <= self.start_ns:
                self.source.seek(where, backward=True, any_frame=False)
                return
            back_ns = 2 * back_ns + NS_PER_SECOND

    def _reopen(self) -> None:
        self.source.close()
        self.source = av.open(self.uri)
        self.video = self.source.streams.video[0] if self.source.streams.video else None
        self.audio = self.source.streams.audio[0] if self.source.streams.audio else None

    def write(self, tmp: Path, mode: ClipMode) -> ClipReport:
        keyframe_ns = self._keyframe_at_start() if mode != "encode" else None
        if mode == "copy" and keyframe_ns is None:
            raise ValueError("this cut cannot be stream-copied (no keyframe at its start, B-frames, or a codec "
                             "browsers do not play): ask for mode 'encode' or 'auto'")
        self.seek()
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            if keyframe_ns is not None:
                return self._copy(out, keyframe_ns, tmp)
            return self._encode(out, tmp)

    # -- copy ------------------------------------------------------------------------------------

    def _keyframe_at_start(self) -> int | None:
        """The keyframe's time when the cut may be copied (see the module doc), else None."""
        v, a = self.video, self.audio
        if v is None or v.codec_context.name not in _COPY_VIDEO or v.codec_context.has_b_frames:
            return None
        if a is not None and a.codec_context.name not in _COPY_AUDIO:
            return None
        self.seek()
        for packet in self.source.demux(v):
            if packet.pts is None:
                continue
            t = self.t_ns(packet.pts, packet.time_base)
            on_screen = packet.is_keyframe and t <= self.start_ns < t + self.frame_ns
            return t if on_screen else None
        return None

    def _copy(self, out, first_ns: int, tmp: Path) -> ClipReport:
        streams = [s for s in (self.video, self.audio) if s is not None]
        outs = {s.index: out.add_stream_from_template(s) for s in streams}
        done: set[int] = set()
        frames = 0
        for packet in self.source.demux(streams):
            index = packet.stream.index
            if packet.pts is None or index in done:
                continue
            t = self.t_ns(packet.pts, packet.time_base)
            if t >= self.end_ns:
                done.add(index)
                if len(done) == len(streams):
                    break
                continue
            if t < first_ns - (self.frame_ns // 2 if packet.stream is self.video else 0):
                continue
            shift = _ns_to_pts(first_ns + self.origin_ns, packet.time_base)
            packet.pts -= shift
            packet.dts = packet.pts if packet.dts is None else packet.dts - shift
            if packet.dts < 0 or packet.pts < 0:
                continue  # audio a few samples before the first frame
            packet.stream = outs[index]
            out.mux(packet)
            frames += index == self.video.index
        if not frames:
            raise ValueError(f"no frames between {self.start_ns / 1e9:g} s and {self.end_ns / 1e9:g} s")
        return ClipReport(tmp, first_ns, self.end_ns, "copy", frames)

    # -- encode ----------------------------------------------------------------------------------

    def _encode(self, out, tmp: Path) -> ClipReport:
        v, a = self.video, self.audio
        ov = oa = None
        if v is not None:
            v.thread_type = "AUTO"
            ov = out.add_stream("libx264", rate=v.average_rate or 25)
            ov.width, ov.height = v.codec_context.width // 2 * 2, v.codec_context.height // 2 * 2
            ov.pix_fmt = "yuv420p"
            ov.time_base = v.time_base
            ov.codec_context.time_base = v.time_base
            ov.options = {"preset": "veryfast", "crf": "20"}
        if a is not None:
            rate = a.codec_context.sample_rate or 48_000
            oa = out.add_stream("aac", rate=rate)
            oa.layout = "stereo" if a.codec_context.channels >= 2 else "mono"
            oa.time_base = Fraction(1, rate)
            resampler = av.AudioResampler(format="fltp", layout=oa.layout, rate=rate)
        first_ns = None if v is not None else self.start_ns
        pending_audio: list[av.AudioFrame] = []  # audio decoded before the first frame is known
        samples_out = 0
        frames = 0
        video_done = v is None
        audio_done = a is None
        last_frame_ns: int | None = None
        for packet in self.source.demux([s for s in (v, a) if s is not None]):
            if video_done and audio_done:
                break
            is_video = v is not None and packet.stream.index == v.index
            if (is_video and video_done) or (not is_video and audio_done):
                continue
            try:
                decoded = packet.decode()
            except av.InvalidDataError:
                continue  # a damaged packet: its frames are missing from the clip, the rest is kept
            for frame in decoded:
                if frame.pts is None:
                    continue
                t = self.t_ns(frame.pts, frame.time_base)
                if is_video:
                    if t >= self.end_ns:
                        video_done = True
                        break
                    if first_ns is None:
                        if t <= self.start_ns:  # a later frame may still be the one on screen at start
                            last_frame_ns, held = t, frame
                            continue
                        first_ns = last_frame_ns if last_frame_ns is not None else t
                        if last_frame_ns is not None:
                            frames += self._put_video(out, ov, held, first_ns)
                    frames += self._put_video(out, ov, frame, first_ns)
                else:
                    if first_ns is None:
                        pending_audio.append(frame)
                        continue
                    for ready in pending_audio + [frame]:
                        samples_out, audio_done = self._put_audio(out, oa, resampler, ready, first_ns, samples_out)
                        if audio_done:
                            break
                    pending_audio = []
                if audio_done and not is_video:
                    break
        if v is not None and first_ns is None and last_frame_ns is not None and self.start_ns < last_frame_ns + self.frame_ns:
            first_ns = last_frame_ns  # the span starts inside the source's last frame
            frames += self._put_video(out, ov, held, first_ns)
        for ready in pending_audio if first_ns is not None and not audio_done else []:
            samples_out, audio_done = self._put_audio(out, oa, resampler, ready, first_ns, samples_out)
            if audio_done:
                break
        if (v is not None and not frames) or (v is None and not samples_out):
            raise ValueError(f"nothing between {self.start_ns / 1e9:g} s and {self.end_ns / 1e9:g} s of the source")
        for stream in (ov, oa):
            if stream is not None:
                out.mux(stream.encode(None))
        return ClipReport(tmp, first_ns, self.end_ns, "encode", frames)

    def _put_video(self, out, ov, frame: av.VideoFrame, first_ns: int) -> int:
        t = self.t_ns(frame.pts, frame.time_base)
        image = frame.reformat(width=ov.width, height=ov.height, format="yuv420p")
        image.pts = _ns_to_pts(t - first_ns, ov.time_base)
        image.time_base = ov.time_base
        image.pict_type = av.video.frame.PictureType.NONE
        out.mux(ov.encode(image))
        return 1

    def _put_audio(self, out, oa, resampler, frame: av.AudioFrame, first_ns: int, samples_out: int) -> tuple[int, bool]:
        """Encode the part of ``frame`` inside ``[first_ns, end_ns)``; returns samples so far, and whether done."""
        rate = oa.rate
        want = (self.end_ns - first_ns) * rate // NS_PER_SECOND
        t = self.t_ns(frame.pts, frame.time_base)
        for chunk in resampler.resample(frame):
            samples = chunk.to_ndarray()  # fltp: [channels, n]
            skip = max(0, round((first_ns - t) * rate / NS_PER_SECOND))
            t += chunk.samples * NS_PER_SECOND // rate
            samples = samples[:, skip : skip + max(0, want - samples_out)]
            if samples.shape[1]:
                piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=oa.layout)
                piece.sample_rate = rate
                piece.pts = samples_out
                piece.time_base = Fraction(1, rate)
                samples_out += samples.shape[1]
                out.mux(oa.encode(piece))
            if samples_out >= want:
                return samples_out, True
        return samples_out, False


def _ns_to_pts(t_ns: int, time_base) -> int:
    return round(Fraction(t_ns, NS_PER_SECOND) / Fraction(time_base))


def recording_folder(data_dir: str | os.PathLike, name: str) -> Path:
    """Where live stream ``name``'s recording is kept (stream names are checked: no path in them)."""
    return Path(data_dir) / "recordings" / name


def cut_source(data_dir: str | os.PathLike, source: SourceInfo, start_ns: int, end_ns: int, out_path: str | os.PathLike,
               *, mode: ClipMode = "auto") -> ClipReport:
    """A clip of an indexed source: from the file it was read from, or for a live stream from
    its recording. ``LookupError`` when neither holds the span."""
    recorded = recording_folder(data_dir, source.name)
    if source.uri.startswith(("http://", "https://", "s3://")) and not source.source_id.startswith("live-"):
        from operators.media.s3 import readable_url  # a file on a web server or in object storage: read where it is

        url = readable_url(source.uri)
        try:
            return cut_clip(url, start_ns, end_ns, out_path, mode=mode)
        except ValueError as exc:  # said with the name the user gave, not the presigned URL's signature
            raise ValueError(str(exc).replace(url, source.uri)) from None
    if "://" in source.uri or not os.path.isfile(source.uri):
        if (recorded / INDEX_FILE).is_file():
            return cut_recorded(recorded, start_ns, end_ns, out_path, mode=mode)
        if "://" in source.uri:
            raise LookupError(f"{source.name} is a stream that was not recorded: run `vidscope live ... --record` "
                              "to keep what it shows")
        raise LookupError(f"{source.name}: its media is no longer at {source.uri}")
    return cut_clip(source.uri, start_ns, end_ns, out_path, mode=mode)


def cut_recorded(folder: str | os.PathLike, start_ns: int, end_ns: int, out_path: str | os.PathLike, *,
                 mode: ClipMode = "auto") -> ClipReport:
    """``cut_clip`` of a live stream's recording (``operators.media.record``): times are the
    stream's own; the files that cover the span are joined (MPEG-TS joins by concatenation) and
    cut. Only what retention kept can be cut: a span partly deleted starts where the recording does."""
    folder = Path(folder)
    files = [f for f in read_index(folder) if f.end_ns > start_ns and f.start_ns < end_ns]
    if not files:
        kept = read_index(folder)
        held = (f"it holds {kept[0].start_ns / NS_PER_SECOND:.1f}-{kept[-1].end_ns / NS_PER_SECOND:.1f} s"
                if kept else "it holds nothing yet")
        raise LookupError(f"{start_ns / NS_PER_SECOND:.1f}-{end_ns / NS_PER_SECOND:.1f} s of this stream was not "
                          f"recorded or is no longer kept ({held})")
    out_path = Path(out_path)
    fd, joined = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".ts", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as sink:
            for f in files:
                with open(folder / f.name, "rb") as part:
                    shutil.copyfileobj(part, sink)
        zero_ns = files[0].start_ns - _first_video_ns(folder / files[0].name)  # stream time of the joined file's clock 0
        report = cut_clip(joined, max(0, start_ns - zero_ns), end_ns - zero_ns, out_path, mode=mode)
    finally:
        os.unlink(joined)
    return ClipReport(report.path, report.start_ns + zero_ns, report.end_ns + zero_ns, report.mode, report.video_frames)


def _first_video_ns(path: Path) -> int:
    """Where a recorded file's first packet (a video keyframe: files are cut there) sits on the
    file's own clock (PTS minus its start time, which an earlier audio packet may set)."""
    with av.open(str(path)) as c:
        origin = container_start_ns(c)
        streams = c.streams.video or c.streams.audio
        for packet in c.demux(streams[0]):
            if packet.pts is not None:
                return pts_to_ns(packet.pts, packet.time_base) - origin
    return 0
