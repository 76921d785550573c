"""Keeping a live stream's packets, so that its moments can be watched and exported afterwards.

``Recorder`` receives every packet the live reader demuxes (stream copy: nothing is decoded or
encoded for it) and writes them to rolling MPEG-TS files, a new one at the first video keyframe
after ``segment_seconds`` (so every file starts decodable), named by the stream time of their
first packet on the reader's anchored clock (``operators.media.live``). After each roll the
oldest file is deleted while the finished files after it still hold ``retain_seconds`` (so at
least the last ``retain_seconds`` stay watchable, and at most one file more), or while the
finished files are larger than ``retain_bytes`` (a cap). ``recording.json`` beside the files
lists them (start, end, bytes); it is replaced whole at each roll, so a reader never sees half
of it.

A connection's packets wait until the reader knows where the connection sits on its clock (the
first decoded item, a few packets in); a reconnect closes the current file and starts a new one.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import av

from operators.media.decode import pts_to_ns
from operators.records import NS_PER_SECOND

log = logging.getLogger(__name__)
INDEX_FILE = "recording.json"


@dataclass(frozen=True, slots=True)
class RecordConfig:
    folder: str
    """Where this stream's files go (``DATA/recordings/NAME``)."""
    segment_seconds: float = 10.0
    retain_seconds: float | None = None
    retain_bytes: int | None = None

    def __post_init__(self) -> None:
        if not self.segment_seconds > 0:
            raise ValueError(f"recording segments must be longer than 0 s, got {self.segment_seconds}")
        if self.retain_seconds is not None and self.retain_seconds < self.segment_seconds:
            raise ValueError(f"--retain must be at least one recording segment ({self.segment_seconds:g} s)")
        if self.retain_bytes is not None and self.retain_bytes < 1 << 20:
            raise ValueError("--retain-size must be at least 1 MB")


@dataclass(slots=True)
class RecordedFile:
    name: str
    start_ns: int  # stream time of its first packet
    end_ns: int  # stream time just after its last packet
    bytes: int = 0


def _copy(packet: av.Packet) -> av.Packet:
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.time_base, copy.duration = packet.pts, packet.dts, packet.time_base, packet.duration
    copy.is_keyframe = packet.is_keyframe
    return copy


def read_index(folder: Path) -> list[RecordedFile]:
    """What ``folder`` holds, oldest first (empty when nothing was recorded there)."""
    try:
        entries = json.loads((Path(folder) / INDEX_FILE).read_text())
    except FileNotFoundError:
        return []
    return [RecordedFile(e["name"], e["start_ns"], e["end_ns"], e["bytes"]) for e in entries]


class Recorder:
    def __init__(self, config: RecordConfig) -> None:
        self.config = config
        self.folder = Path(config.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files = read_index(self.folder)  # a restarted stream appends to what it kept before
        self._out = None
        self._streams: dict[int, object] = {}  # input stream index -> output stream
        self._current: RecordedFile | None = None
        self._inputs: list = []
        self._recorded: set[int] = set()
        self._has_video = False
        self._offset_ns: int | None = None
        self._origin_ns = 0
        self._waiting: list[av.Packet] = []
        self.packets = 0

    # -- what the live reader calls ----------------------------------------------------------------

    def begin(self, streams: list, origin_ns: int) -> None:
        """A connection opened: its audio and video streams (templates for the copies) and the
        decoder's clock origin (its PTS minus this is the decoder's time)."""
        self.end()
        self._inputs = [s for s in streams if s.type in ("video", "audio")]
        self._recorded = {s.index for s in self._inputs}
        self._has_video = any(s.type == "video" for s in self._inputs)
        self._origin_ns = origin_ns
        self._offset_ns = None

    def anchor(self, offset_ns: int) -> None:
        """Where this connection sits: stream time = decoder time + ``offset_ns``."""
        self._offset_ns = offset_ns
        waiting, self._waiting = self._waiting, []
        for packet, source in waiting:
            self._write(packet, source)

    def packet(self, packet: av.Packet) -> None:
        """One demuxed packet (copied: muxing rebases a packet's timestamps, and the reader still decodes it)."""
        if packet.pts is None or packet.stream.index not in self._recorded:
            return
        if self._offset_ns is None:
            if len(self._waiting) < 10_000:
                self._waiting.append((_copy(packet), packet.stream))
            return
        self._write(_copy(packet), packet.stream)

    def _write(self, packet: av.Packet, source) -> None:
        t_ns = pts_to_ns(packet.pts, packet.time_base) - self._origin_ns + self._offset_ns
        due = self._current is None or t_ns - self._current.start_ns >= self.config.segment_seconds * NS_PER_SECOND
        if due and (packet.is_keyframe and source.type == "video" or not self._has_video):
            self._roll(t_ns)
        if self._current is None:
            return  # before the first keyframe: nothing to start a file with
        try:
            packet.stream = self._streams[source.index]
            self._out.mux(packet)
        except (av.FFmpegError, ValueError) as exc:  # a packet the muxer refuses (non-monotonic DTS): skipped
            log.debug("%s: a packet was not recorded: %s", self.folder, exc)
            return
        self.packets += 1
        duration_ns = pts_to_ns(packet.duration or 0, packet.time_base)
        self._current.end_ns = max(self._current.end_ns, t_ns + duration_ns)

    def end(self) -> None:
        """The connection closed (or the stream stopped): close the current file."""
        self._close_file()
        self._waiting = []
        self._write_index()

    # -- files -------------------------------------------------------------------------------------

    def _roll(self, start_ns: int) -> None:
        self._close_file()
        name = f"{max(0, start_ns):015d}.ts"
        self._out = av.open(str(self.folder / name), "w", format="mpegts")
        self._streams = {s.index: self._out.add_stream_from_template(s) for s in self._inputs}
        self._current = RecordedFile(name, start_ns, start_ns)
        self.files.append(self._current)
        self._retain()
        self._write_index()

    def _close_file(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except av.FFmpegError as exc:
                log.warning("%s: closing a recording file failed: %s", self.folder, exc)
            self._out = None
        if self._current is not None:
            path = self.folder / self._current.name
            self._current.bytes = path.stat().st_size if path.exists() else 0
            self._current = None

    def _retain(self) -> None:
        """Delete the oldest finished files while the rest still hold the time kept, or exceed the size cap."""
        cfg = self.config

        def deletable() -> bool:
            done = self.files[:-1]  # never the one being written
            if not done:
                return False
            # Without the oldest, the finished files would still span retain_seconds.
            rest_ns = self.files[-1].start_ns - self.files[1].start_ns
            return ((cfg.retain_seconds is not None and rest_ns >= cfg.retain_seconds * NS_PER_SECOND)
                    or (cfg.retain_bytes is not None and sum(f.bytes for f in done) > cfg.retain_bytes))

        while deletable():
            oldest = self.files.pop(0)
            (self.folder / oldest.name).unlink(missing_ok=True)

    def _write_index(self) -> None:
        tmp = self.folder / (INDEX_FILE + ".tmp")
        tmp.write_text(json.dumps([{"name": f.name, "start_ns": f.start_ns, "end_ns": f.end_ns, "bytes": f.bytes}
                                   for f in self.files]))
        os.replace(tmp, self.folder / INDEX_FILE)
