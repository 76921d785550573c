"""Test media: the odd cases every reader must survive, built by pipelines.demo.synth with their truth.

``build_case(name, directory)`` renders one of ``CASES`` (small: 320x240, 6 s, ~0.7 s to build
on 2 cores); ``damage(kind, source, directory)`` makes a broken copy; ``decode_audio`` and
``find_markers`` read what a file really holds, to compare with the truth. The session-scoped
fixtures ``synth_case`` and ``damaged_media`` (tests/media_fixtures.py) build each once per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import av
import numpy as np

from pipelines.demo.synth import GroundTruth, Marker, Scene, Sound, Speech, build_audio, build_video, marker_waveform

SCENES = (Scene("cat", 2.0), Scene("coffee", 2.0), Scene("rocket", 2.0))
"""Three shots, hard cuts at 2.0 s and 4.0 s."""
SOUNDS = (Marker(1.5), Speech("a cup of coffee", 2.2), Sound("crowd", 4.2, 1.6))
"""A marker at 1.5 s, speech from 2.2 s (~1.1 s), cheering 4.2-5.8 s; silence elsewhere."""

CASES = {
    "mp4": dict(suffix=".mp4"),
    "mp4_faststart": dict(suffix=".mp4", faststart=True),
    "mp4_late_audio": dict(suffix=".mp4", audio_offset_seconds=0.5),
    "mpegts": dict(suffix=".ts", audio_offset_seconds=0.5),
    "mkv": dict(suffix=".mkv"),
    "vfr": dict(suffix=".mp4", vfr=True, fps=60),
    "video_only": dict(suffix=".mp4", audio=False),
    "fixed_gop": dict(suffix=".mp4", gop=15),
    "gop_1_5s": dict(suffix=".mp4", gop=45),
    "repeated": dict(suffix=".mp4", repeat=3),
    "audio_only_m4a": dict(suffix=".m4a"),
    "audio_only_wav": dict(suffix=".wav"),
}
"""Names of the cases and how each differs from the plain MP4 (``build_video`` keywords). The TS
starts its clock at 1.4 s, the Matroska at 1.0 s (their defaults); "vfr" has 247 of 360 frames
of a 60 fps grid; "repeated" is 18 s, the 6 s played three times."""

Damage = Literal["truncated", "garbage_middle", "garbage", "empty", "missing"]


def build_case(name: str, directory: Path) -> tuple[Path, GroundTruth]:
    options = dict(CASES[name])
    path = directory / f"{name}{options.pop('suffix')}"
    if path.suffix in (".m4a", ".wav"):
        return path, build_audio(path, SOUNDS, duration_seconds=sum(s.duration_seconds for s in SCENES))
    return path, build_video(path, SCENES, SOUNDS, **options)


def damage(kind: Damage, source: Path, directory: Path) -> Path:
    """A broken copy of ``source`` in ``directory`` (for "garbage", "empty", "missing": no copy):

    - ``truncated``: the first 60% of the bytes, as a download cut short;
    - ``garbage_middle``: the middle third overwritten with random bytes (a seeded generator);
    - ``garbage``: 64 KiB of random bytes named like ``source``;
    - ``empty``: zero bytes; ``missing``: a path that does not exist.
    """
    path = directory / f"{source.stem}_{kind}{source.suffix}"
    data = source.read_bytes()
    noise = np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    if kind == "truncated":
        path.write_bytes(data[: len(data) * 6 // 10])
    elif kind == "garbage_middle":
        third = len(data) // 3
        path.write_bytes(data[:third] + noise[third : 2 * third] + data[2 * third :])
    elif kind == "garbage":
        path.write_bytes(noise[:65536].ljust(65536, b"\0"))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind != "missing":
        raise ValueError(f"unknown damage {kind!r}")
    return path


def decode_audio(path: Path) -> tuple[np.ndarray, float, int]:
    """The first channel of the first audio stream as float32, the file-clock time of its first
    sample, and the sample rate: decoded frames are contiguous in these files, so it is one array."""
    with av.open(str(path)) as container:
        chunks, first_seconds = [], None
        for frame in container.decode(audio=0):
            if first_seconds is None:
                first_seconds = float(frame.pts * frame.time_base)
            array = frame.to_ndarray()
            channel = array[0] if frame.format.is_planar else array.reshape(-1, len(frame.layout.channels))[:, 0]
            chunks.append(channel / 32768.0 if channel.dtype == np.int16 else channel)
        return np.concatenate(chunks).astype(np.float32), first_seconds, container.streams.audio[0].sample_rate


def find_markers(samples: np.ndarray, sample_rate: int, count: int) -> list[int]:
    """Sample indices where the ``count`` strongest copies of the synth marker start, in order.

    Cross-correlation (via FFT) with the marker's waveform; peaks closer than the marker's length
    to a stronger one are the same marker.
    """
    template = marker_waveform(sample_rate)
    size = 1 << int(np.ceil(np.log2(len(samples) + len(template))))
    score = np.fft.irfft(np.fft.rfft(samples, size) * np.conj(np.fft.rfft(template, size)), size)[: len(samples)]
    found: list[int] = []
    for index in np.argsort(score)[::-1]:
        if all(abs(int(index) - f) >= len(template) for f in found):
            found.append(int(index))
            if len(found) == count:
                break
    return sorted(found)


def frame_times(path: Path) -> list[float]:
    """File-clock presentation time of every video frame, from the packets (no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        return [float(t * stream.time_base) for t in pts]
