"""Live streams as the server sees them: each stream's status and the events it sends.

The live pipeline (``pipelines.live.outputs``) writes ``DATA/live/NAME.json`` (state, lag,
drops), appends every highlight and chapter to ``DATA/live/NAME.events.jsonl``, and with Redis
also keeps the status as a checkpoint and publishes each event on pub/sub. The server reads the
same things: statuses from the files (and Redis checkpoints of streams run elsewhere), events by
following the files from where they end when a client connects, or from pub/sub with Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import AsyncIterator

from indexers.clips import recording_folder
from operators.media.record import read_index
from operators.records import NS_PER_SECOND
from pipelines.ingest.sources import stream_name_problem
from pipelines.live.outputs import EVENTS_CHANNEL

log = logging.getLogger(__name__)
POLL_S = 0.25
"""How often the events files are looked at for new lines."""


def live_folder(data_dir: Path) -> Path:
    return Path(data_dir) / "live"


def statuses(data_dir: Path) -> list[dict]:
    """Every stream's last written status, by name, with what its recording holds (or None)."""
    out = []
    for path in sorted(live_folder(data_dir).glob("*.json")):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError) as exc:  # replaced whole with os.replace: only a foreign file fails
            log.warning("live status %s is unreadable: %s", path, exc)
            continue
        status["recording"] = recording(data_dir, str(status.get("name", path.stem)))
        out.append(status)
    return out


def recording(data_dir: Path, name: str) -> dict | None:
    """What is kept of a stream: the span, in stream seconds, its files and bytes."""
    if stream_name_problem(name) is not None:
        return None
    files = read_index(recording_folder(data_dir, name))
    if not files:
        return None
    return {"start": files[0].start_ns / NS_PER_SECOND, "end": files[-1].end_ns / NS_PER_SECOND, "files": len(files),
            "bytes": sum(f.bytes for f in files)}


async def file_events(data_dir: Path, stop: asyncio.Event) -> AsyncIterator[dict]:
    """Events appended to any stream's events file after this call, as they arrive (a stream
    that starts later is picked up too)."""
    folder = live_folder(data_dir)
    offsets = {p: p.stat().st_size for p in folder.glob("*.events.jsonl")} if folder.is_dir() else {}
    partial: dict[Path, bytes] = {}
    while not stop.is_set():
        for path in sorted(folder.glob("*.events.jsonl")) if folder.is_dir() else []:
            at = offsets.get(path, 0)
            try:
                size = path.stat().st_size
                if size < at:  # replaced: read it from the start
                    at = 0
                if size == at:
                    offsets[path] = at
                    continue
                with path.open("rb") as f:
                    f.seek(at)
                    data = partial.pop(path, b"") + f.read(size - at)
            except OSError:
                continue
            offsets[path] = size
            *lines, rest = data.split(b"\n")
            if rest:
                partial[path] = rest  # a line still being written
            for line in lines:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        log.warning("%s: a line that is not JSON was skipped", path)
        try:
            await asyncio.wait_for(stop.wait(), POLL_S)
        except asyncio.TimeoutError:
            pass


async def redis_events(store, stop: asyncio.Event) -> AsyncIterator[dict]:
    """Events published on the Redis store's channel (``pipelines.live.outputs._Channel``)."""
    pubsub = store.pubsub()
    channel = store.channel_key(EVENTS_CHANNEL)
    await asyncio.to_thread(pubsub.subscribe, channel)
    try:
        while not stop.is_set():
            message = await asyncio.to_thread(pubsub.get_message, ignore_subscribe_messages=True, timeout=POLL_S)
            if message and message.get("type") == "message":
                try:
                    yield json.loads(message["data"])
                except ValueError:
                    log.warning("an event on %s that is not JSON was skipped", channel)
    finally:
        await asyncio.to_thread(pubsub.close)
