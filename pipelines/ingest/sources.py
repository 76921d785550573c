"""What the user named, as a list of sources: files, folders (recursively), globs and URLs."""

from __future__ import annotations

import glob
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from indexers.store import SourceInfo
from operators.media import s3

MEDIA_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".m2ts", ".mts", ".flv", ".wmv", ".mpg", ".mpeg",
    ".3gp", ".ogv", ".m4a", ".mp3", ".wav", ".flac", ".ogg", ".opus", ".aac",
})
URL_SCHEMES = ("rtsp://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "srt://", "file://")


@dataclass(frozen=True, slots=True)
class SourceRef:
    uri: str
    """A path (absolute) or URL."""
    source_id: str
    """Stable id: for a file, a fingerprint of its content, so the same video found under two
    names or ingested twice is one source; for a URL, the URL."""
    given_name: str | None = None
    """A live stream's ``--name``; files are named by their file name."""

    @property
    def name(self) -> str:
        if self.given_name:
            return self.given_name
        return Path(self.uri).name if "://" not in self.uri else self.uri


def file_fingerprint(path: Path, *, chunk_bytes: int = 1 << 20) -> str:
    """Size plus the first and last MiB: cheap on hours of video, and no two real videos share it."""
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=8)
    with path.open("rb") as f:
        digest.update(f.read(chunk_bytes))
        if size > chunk_bytes:
            f.seek(max(chunk_bytes, size - chunk_bytes))
            digest.update(f.read(chunk_bytes))
    return digest.hexdigest()


def expand(inputs: list[str], *, s3_endpoint: str | None = None) -> tuple[list[SourceRef], list[tuple[str, str]]]:
    """Sources in a stable order, and ``(input, reason)`` for each input that names nothing usable.

    A folder or a glob contributes its media files (by extension), recursively for a folder; a
    copy of a file already listed (same content) is listed once. A file named directly is
    taken whatever its extension, so a damaged or mislabelled file fails with a reason rather than
    being silently skipped. ``s3://BUCKET/PREFIX`` contributes the media objects under the prefix
    (or the one object it names), each identified by its ETag and size.
    """
    refs: list[SourceRef] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    seen_ids: set[str] = set()

    def add_file(path: Path) -> None:
        resolved = str(path.resolve())
        if resolved in seen:
            return
        seen.add(resolved)
        try:
            source_id = file_fingerprint(path)
        except OSError as exc:
            problems.append((str(path), f"cannot read: {exc.strerror or exc}"))
            return
        if source_id in seen_ids:  # a copy of a file already listed: the same video, indexed once
            return
        seen_ids.add(source_id)
        refs.append(SourceRef(resolved, source_id))

    for raw in inputs:
        if raw.startswith("s3://"):
            try:
                objects = s3.list_objects(raw, MEDIA_SUFFIXES, endpoint=s3_endpoint)
            except (OSError, ValueError) as exc:
                problems.append((raw, str(exc).removeprefix(f"{raw}: ")))
                continue
            if not objects:
                problems.append((raw, "no media objects under this prefix"))
            for obj in objects:
                if obj.url not in seen and obj.fingerprint not in seen_ids:
                    seen.add(obj.url)
                    seen_ids.add(obj.fingerprint)
                    refs.append(SourceRef(obj.url, obj.fingerprint))
            continue
        if raw.startswith(URL_SCHEMES):
            if raw not in seen:
                seen.add(raw)
                refs.append(SourceRef(raw, "url-" + hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            if not found:
                problems.append((raw, "folder holds no media files"))
            for p in found:
                add_file(p)
        elif path.is_file():
            add_file(path)
        elif glob.has_magic(raw):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True)
                             if Path(m).is_file() and Path(m).suffix.lower() in MEDIA_SUFFIXES)
            if not matches:
                problems.append((raw, "pattern matches no file"))
            for p in matches:
                add_file(p)
        else:
            problems.append((raw, "no such file or folder"))
    return refs, problems


STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A live stream's name (``--name``, a Kafka message key): it names the stream's files under
DATA/live/, so it is one plain file-name part: letters, digits, '.', '_', '-', at most 128,
not starting with '.' or '-' (no '/', no '..', nothing a shell or a URL treats specially)."""


def stream_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a stream, in words; None when it can."""
    if STREAM_NAME.fullmatch(name):
        return None
    shown = name if len(name) <= 60 else name[:57] + "..."
    return (f"{shown!r} is not a stream name: use letters, digits, '.', '_' and '-' (at most 128, "
            "starting with a letter or digit)")


def live_source_id(name: str) -> str:
    """A stream's id is a function of its name: restarting ``vidscope live`` continues it."""
    return "live-" + hashlib.blake2b(name.encode(), digest_size=8).hexdigest()


def register_stream(index, uri: str, name: str) -> tuple[str, int]:
    """Record stream ``name`` as a source being ingested; returns its id and wall-clock anchor
    (a stream seen before keeps its anchor: a restart continues its clock)."""
    source_id = live_source_id(name)
    known = index.store.get_source(source_id)
    anchor = known.ingested_at_ns if known is not None else time.time_ns()
    index.add_source(SourceInfo(source_id, uri, name, has_video=True, has_audio=True, status="ingesting",
                                ingested_at_ns=anchor))
    return source_id, anchor
