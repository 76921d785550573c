"""Kafka in and out: a stream as MPEG-TS chunks on a topic, highlight events as JSON on another.

**Streams in.** ``publish`` remuxes a file or URL into MPEG-TS (stream copy, nothing re-encoded)
and produces it as messages of about ``chunk_bytes`` (whole 188-byte TS packets): key = the stream
name (utf-8), value = the chunk, header ``seq`` = "0", "1", ... . One key stays in one partition,
so a stream's chunks keep their order; several streams may share a topic and a partition.
``KafkaStreams`` consumes such a topic and hands out ``Chunk`` records; ``ChunkReader`` turns one
stream's chunks back into a file-like object that PyAV opens with ``av.open(reader,
format="mpegts")``, so a Kafka stream decodes like any other stream.

Offsets. The consumer never commits by itself. The caller marks chunks ``done`` once the segments
they carried are durable and calls ``commit()``: per partition it commits the lowest offset still
in flight (streams sharing a partition finish out of order), so after a crash a restart resumes at
the first chunk not yet durable. Chunks are cut by size, not at keyframes, and a decoder started
mid-GOP drops every picture up to the next keyframe (1 s of a 6-s test clip with a 1-s GOP). So a
chunk counts as done only once the GOP it ends in is durable, or, exactly:
``ChunkReader.resume_at(keyframe_packet.pos)`` names the chunk to restart from so that decoding
resumes at that keyframe; mark the chunks before it done, and skip what the restart decodes
before the first segment not yet durable.

Dead letters. A message without a key, with a key that is not a stream name
(``pipelines.ingest.sources.STREAM_NAME``: it names files), with an empty value, whose value is not whole
MPEG-TS packets (each 188 bytes starting with the 0x47 sync byte), or of a stream past the
``MAX_STREAMS_PER_TOPIC`` a worker reads is produced unchanged (key, value,
headers) to the dead-letter topic, default ``<topic>.dead-letter``, with the headers ``reason``
(words), ``source-topic``, ``source-partition`` and ``source-offset`` added, and is skipped: its
offset counts as processed once the dead letter is acknowledged.

**Events out** (highlights and chapters as JSON) are ``pipelines.kafka.events``'s.

Every producer here is idempotent with ``acks=all``: a retried send is not written twice and a
stream's chunks are never reordered. Against the Tansu broker the tests use (shared/FACTS.md),
consumer-group joins take about ``session_timeout_ms / 2``; its high watermark is wrong with
batched records, so nothing here reads ``end_offsets`` or lag.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

import av
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from pipelines.ingest.sources import stream_name_problem

__all__ = [
    "Chunk", "ChunkReader", "KafkaStreams", "KafkaTarget", "PublishReport", "malformed_reason", "mpegts_chunks",
    "parse_kafka_url", "publish",
]  # fmt: skip

MAX_STREAMS_PER_TOPIC = 64
"""Streams one worker reads from a topic (each holds two threads of its actor); the chunks of
any further stream go to the dead-letter topic, kept, with the reason."""
TS_PACKET_BYTES = 188
TS_SYNC_BYTE = 0x47
DEFAULT_CHUNK_BYTES = TS_PACKET_BYTES * 1000
MAX_CHUNK_BYTES = TS_PACKET_BYTES * 5000
"""940 KB: under the 1 MiB message limit of Kafka's (and kafka-python's) defaults."""
# A dead consumer's partitions move to another member after 6 s, and a join to Tansu takes 3 s
# (kafka-python's default 45 s session: 23 s, measured; a join lasts about session / 2).
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?")


@dataclass(frozen=True)
class KafkaTarget:
    bootstrap: str
    """``host:port[,host:port...]``, as kafka-python's ``bootstrap_servers`` takes it."""
    topic: str


def parse_kafka_url(url: str) -> KafkaTarget:
    """``kafka://HOST:PORT/TOPIC`` (several brokers: ``kafka://h1:9092,h2:9092/TOPIC``; the port
    defaults to 9092) -> ``KafkaTarget``. Raises ``ValueError`` saying which part is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "kafka":
        raise ValueError(f"not a Kafka URL: {url!r}; expected kafka://HOST:PORT/TOPIC")
    hosts, sep, topic = rest.partition("/")
    if not hosts:
        raise ValueError(f"{url!r} names no broker; expected kafka://HOST:PORT/TOPIC")
    if not sep or not topic:
        raise ValueError(f"{url!r} names no topic; expected kafka://HOST:PORT/TOPIC")
    if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise ValueError(f"{topic!r} is not a Kafka topic name: 1-249 of letters, digits, '.', '_', '-' (no '/' or '?')")
    bootstrap = []
    for host in hosts.split(","):
        match = _HOST.fullmatch(host)
        if not match:
            raise ValueError(f"{host!r} in {url!r} is not HOST or HOST:PORT")
        port = int(match[2] or 9092)
        if not 0 < port < 65536:
            raise ValueError(f"port {port} in {url!r} is outside 1-65535")
        bootstrap.append(f"{match[1]}:{port}")
    return KafkaTarget(",".join(bootstrap), topic)


# -- streams in: publishing ----------------------------------------------------------------------


@dataclass(frozen=True)
class PublishReport:
    messages: int
    bytes: int
    wall_seconds: float


class _Sink:
    """Where the TS muxer writes: PyAV calls ``write`` with whole TS packets (no ``seek``, so the
    output is a stream and each muxed packet is written out at once)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def mpegts_chunks(
    source: str,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_chunk_seconds: float | None = 1.0,
    realtime: bool = True,
    stop: threading.Event | None = None,
) -> Iterator[bytes]:
    """Remux ``source`` (file or URL) into MPEG-TS and yield it in chunks of whole TS packets.

    A chunk is ``chunk_bytes`` long, except that once ``max_chunk_seconds`` of media has gone by
    since the last chunk whatever is muxed goes out (so a low-bitrate stream still reaches a
    reader within about that long), and the last one. Stream copy of every audio and video
    stream (others are dropped): libavformat's TS muxer inserts ``h264_mp4toannexb`` /
    ``hevc_mp4toannexb`` by itself (auto-BSF) and wraps AAC in ADTS. ``realtime`` paces the
    packets by their decoding timestamps like ``ffmpeg -re``; leave it off for a live URL, which
    paces itself. ``stop`` ends the stream early: what was muxed still goes out.
    """
    if chunk_bytes % TS_PACKET_BYTES or not TS_PACKET_BYTES <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be a multiple of {TS_PACKET_BYTES} in [188, {MAX_CHUNK_BYTES}], got {chunk_bytes}")
    if max_chunk_seconds is not None and not max_chunk_seconds > 0:
        raise ValueError(f"max_chunk_seconds must be positive or None, got {max_chunk_seconds}")
    sink = _Sink()
    with av.open(source) as src, av.open(sink, "w", format="mpegts") as out:
        streams = [s for s in src.streams if s.type in ("video", "audio")]
        if not streams:
            raise ValueError(f"{source}: no audio or video stream to publish")
        outputs = {s.index: out.add_stream_from_template(s) for s in streams}
        first_seconds = chunk_start_seconds = seconds = None
        wall_start = time.monotonic()
        for packet in src.demux(streams):
            if stop is not None and stop.is_set():
                break
            if packet.size == 0:  # the demuxer's flush packets
                continue
            stamp = packet.dts if packet.dts is not None else packet.pts  # Matroska leaves some dts unset
            if stamp is not None:
                seconds = float(stamp * packet.time_base)
                if first_seconds is None:
                    first_seconds = chunk_start_seconds = seconds
                delay = wall_start + (seconds - first_seconds) - time.monotonic()
                if realtime and delay > 0:
                    if stop is None:
                        time.sleep(delay)
                    elif stop.wait(delay):
                        break
            packet.stream = outputs[packet.stream.index]
            out.mux(packet)
            while len(sink.data) >= chunk_bytes:
                yield bytes(sink.data[:chunk_bytes])
                del sink.data[:chunk_bytes]
                chunk_start_seconds = seconds
            late = seconds is not None and max_chunk_seconds is not None and seconds - chunk_start_seconds >= max_chunk_seconds
            if late and sink.data:
                yield _take_packets(sink.data)
                chunk_start_seconds = seconds
    # Closing the output flushed the muxer's buffered audio.
    for start in range(0, len(sink.data), chunk_bytes):
        yield _take_packets(sink.data[start : start + chunk_bytes])


def _take_packets(data: bytearray) -> bytes:
    whole = len(data) - len(data) % TS_PACKET_BYTES
    if whole != len(data):  # the muxer writes whole packets; this would be a broken stream
        raise RuntimeError(f"the TS muxer left {len(data) - whole} bytes of a partial packet")
    chunk = bytes(data)
    del data[:]
    return chunk


def publish(
    source: str,
    url: str,
    *,
    name: str,
    realtime: bool = True,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    max_chunk_seconds: float | None = 1.0,
    stop: threading.Event | None = None,
) -> PublishReport:
    """Put ``source`` on the topic of ``url`` (``kafka://HOST:PORT/TOPIC``) as stream ``name``:
    the chunks of ``mpegts_chunks`` (which see for the options), key = name, header ``seq``.
    Returns once every message is acknowledged by the broker; raises the first send error."""
    if (problem := stream_name_problem(name)) is not None:
        raise ValueError(f"{problem} (it is the message key)")
    target = parse_kafka_url(url)
    chunks = mpegts_chunks(source, chunk_bytes=chunk_bytes, max_chunk_seconds=max_chunk_seconds, realtime=realtime, stop=stop)
    key, messages, total = name.encode(), 0, 0
    wall_start = time.monotonic()
    with _Producer(target.bootstrap, max_request_bytes=chunk_bytes + 64 * 1024) as producer:
        for chunk in chunks:
            producer.send(target.topic, key=key, value=chunk, headers=[("seq", str(messages).encode())])
            messages, total = messages + 1, total + len(chunk)
    return PublishReport(messages, total, time.monotonic() - wall_start)


class _Producer:
    """An idempotent ``acks=all`` producer that remembers the first failed send and raises it on
    the next send or at ``close`` (after flushing), so no failure goes unseen."""

    def __init__(self, bootstrap: str, *, max_request_bytes: int = 1024 * 1024) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5,
            max_request_size=max(max_request_bytes, 1024 * 1024),
        )  # fmt: skip
        self._error: BaseException | None = None

    def _failed(self, error: BaseException) -> None:
        self._error = self._error or error

    def send(self, topic: str, *, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        self._raise()
        self._producer.send(topic, key=key, value=value, headers=headers or []).add_errback(self._failed)

    def flush(self) -> None:
        self._producer.flush()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"Kafka send failed: {self._error!r}") from self._error

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close()

    def abort(self) -> None:
        self._producer.close(timeout=1)

    def __enter__(self) -> _Producer:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # already failing: do not mask that error with a flush error
            self._producer.close(timeout=5)


# -- streams in: consuming -----------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One message of a stream: ``data`` is whole MPEG-TS packets; ``offset`` is its place in
    ``partition`` of the consumed topic."""

    name: str
    partition: int
    offset: int
    data: bytes = field(repr=False)
    seq: int | None = None
    """The ``seq`` header ``publish`` writes (0 starts a stream: a publisher that restarts sends 0 again)."""

    def __post_init__(self) -> None:
        if not self.name or self.partition < 0 or self.offset < 0:
            raise ValueError(f"a Chunk needs a name and non-negative partition and offset, got {self!r}")

    def __repr__(self) -> str:
        return (f"Chunk(name={self.name!r}, partition={self.partition}, offset={self.offset}, seq={self.seq}, "
                f"bytes={len(self.data)})")


def malformed_reason(key: bytes | None, value: bytes | None) -> str | None:
    """Why a message cannot be a stream chunk, in words, or None when it can."""
    if not key:
        return "no key: a stream chunk's key is its stream name"
    try:
        name = key.decode()
    except UnicodeDecodeError:
        return "key is not utf-8: a stream chunk's key is its stream name"
    if (problem := stream_name_problem(name)) is not None:
        return f"key {problem}"
    if not value:
        return "empty value"
    if len(value) % TS_PACKET_BYTES:
        return f"not MPEG-TS: {len(value)} bytes is not a whole number of {TS_PACKET_BYTES}-byte packets"
    syncs = value[::TS_PACKET_BYTES]
    if syncs.count(TS_SYNC_BYTE) != len(syncs):
        bad = next(i for i, b in enumerate(syncs) if b != TS_SYNC_BYTE)
        return f"not MPEG-TS: packet {bad} does not start with the 0x47 sync byte"
    return None


class KafkaStreams:
    """Consumes a stream topic in consumer group ``group_id``; see the module doc.

    ``poll`` returns the good chunks (dead letters are produced and acknowledged before it
    returns). Commit is explicit: ``done(chunks)`` then ``commit()``, or ``commit(offsets)`` with
    offsets of your own. A new group starts at the earliest message. Not thread-safe: poll,
    done and commit from one thread (kafka-python's consumer is single-threaded).
    """

    def __init__(self, url: str, *, group_id: str, dead_letter_topic: str | None = None,
                 max_streams: int = MAX_STREAMS_PER_TOPIC) -> None:
        target = parse_kafka_url(url)
        self.max_streams = max_streams
        self.streams: set[str] = set()  # the stream names handed out so far
        self.topic = target.topic
        self.dead_letter_topic = dead_letter_topic or f"{target.topic}.dead-letter"
        if self.dead_letter_topic == self.topic:
            raise ValueError(f"the dead-letter topic must differ from the stream topic {self.topic!r}")
        if not _TOPIC.fullmatch(self.dead_letter_topic):
            raise ValueError(f"{self.dead_letter_topic!r} is not a Kafka topic name")
        self.dead_letters = 0
        self._bootstrap = target.bootstrap
        self._dead: _Producer | None = None
        self._in_flight: dict[int, set[int]] = {}  # partition -> offsets handed out, not yet done
        self._next: dict[int, int] = {}  # partition -> offset after the last message seen
        self._committed: dict[int, int] = {}
        self._consumer = KafkaConsumer(
            bootstrap_servers=target.bootstrap, group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            max_partition_fetch_bytes=MAX_CHUNK_BYTES + 64 * 1024,
        )  # fmt: skip
        self._consumer.subscribe([self.topic], listener=_ForgetRevoked(self))

    def poll(self, timeout_s: float) -> list[Chunk]:
        """The next chunks, in offset order per partition; ``[]`` when none came within
        ``timeout_s`` (the first polls of a new member wait for the group join)."""
        batches = self._consumer.poll(timeout_ms=max(0, round(timeout_s * 1000)))
        chunks, dead = [], False
        for tp in sorted(batches, key=lambda tp: tp.partition):
            in_flight = self._in_flight.setdefault(tp.partition, set())
            for record in batches[tp]:
                self._next[tp.partition] = record.offset + 1
                reason = malformed_reason(record.key, record.value)
                if reason is None and record.key.decode() not in self.streams:
                    if len(self.streams) >= self.max_streams:
                        reason = (f"stream {record.key.decode()!r} would be stream {len(self.streams) + 1} of topic "
                                  f"{self.topic!r}: one worker reads at most {self.max_streams}")
                    else:
                        self.streams.add(record.key.decode())
                if reason is None:
                    chunks.append(Chunk(record.key.decode(), tp.partition, record.offset, record.value, _seq(record.headers)))
                    in_flight.add(record.offset)
                else:
                    self._dead_letter(record, reason)
                    dead = True
        if dead:
            self._dead.flush()  # acknowledged before their offsets can be committed
        return chunks

    def pause(self, pause: bool) -> None:
        """Stop (or start again) fetching from every assigned partition; ``poll`` still keeps the
        membership alive. Backpressure for a reader that falls behind: the log keeps the rest."""
        assigned = self._consumer.assignment()
        if pause:
            self._consumer.pause(*assigned)
        else:
            self._consumer.resume(*assigned)

    def _dead_letter(self, record, reason: str) -> None:
        if self._dead is None:
            self._dead = _Producer(self._bootstrap, max_request_bytes=MAX_CHUNK_BYTES + 64 * 1024)
        where = {"source-topic": record.topic, "source-partition": record.partition, "source-offset": record.offset}
        headers = [*(record.headers or []), ("reason", reason.encode()), *((k, str(v).encode()) for k, v in where.items())]
        self._dead.send(self.dead_letter_topic, key=record.key, value=record.value or b"", headers=headers)
        self.dead_letters += 1

    def done(self, chunks: Iterable[Chunk]) -> None:
        """Mark chunks durable: what they carried is in the index. Unknown chunks are ignored
        (their partition was revoked: another member reads them again)."""
        for chunk in chunks:
            self._in_flight.get(chunk.partition, set()).discard(chunk.offset)

    def committable(self) -> dict[tuple[str, int], int]:
        """Per partition, the offset to resume from: the lowest chunk not yet done, else the one
        after the last message seen (dead letters included)."""
        return {(self.topic, p): min(self._in_flight.get(p) or {end}) for p, end in self._next.items()}

    def commit(self, offsets: Mapping[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
        """Commit ``offsets`` ({(topic, partition): next offset to read}), by default
        ``committable()``; only those past what this member committed go out. Returns them."""
        offsets = self.committable() if offsets is None else dict(offsets)
        fresh = {(t, p): o for (t, p), o in offsets.items() if t != self.topic or o > self._committed.get(p, -1)}
        if fresh:
            self._consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in fresh.items()})
            self._committed.update({p: o for (t, p), o in fresh.items() if t == self.topic})
        return fresh

    def close(self) -> None:
        """Leave the group (no commit) and flush any dead letters."""
        try:
            if self._dead is not None:
                self._dead.close()
        finally:
            self._consumer.close(autocommit=False)

    def __enter__(self) -> KafkaStreams:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _seq(headers) -> int | None:
    for key, value in headers or ():
        if key == "seq":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _ForgetRevoked(ConsumerRebalanceListener):
    """A partition taken away's chunks in flight are no longer ours to commit."""

    def __init__(self, streams: KafkaStreams) -> None:
        self.streams = streams
        self.revoked: set = set()

    def on_partitions_revoked(self, revoked) -> None:
        # kafka-python's eager rebalance revokes every partition, then assigns: a partition that
        # comes back keeps its fetch position, so it must keep what is in flight on it too.
        self.revoked = set(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        for tp in self.revoked - set(assigned):
            for table in (self.streams._in_flight, self.streams._next, self.streams._committed):
                table.pop(tp.partition, None)
        self.revoked = set()


class ChunkReader:
    """A read-only file over one stream's chunks, for ``av.open(reader, format="mpegts")``.

    ``read(n)`` returns at most ``n`` bytes and never more than is left of the current chunk, so a
    live reader gets what has arrived without waiting for ``n``; it blocks only while the
    iterator does (a queue fed by ``KafkaStreams.poll``, say) and returns ``b""`` when it ends.
    Not seekable: PyAV reads it as a stream, and a packet's ``pos`` is its byte position in it,
    which ``resume_at`` maps back to a chunk.
    """

    def __init__(self, chunks: Iterable[Chunk | bytes], *, history: int = 4096) -> None:
        self._chunks = iter(chunks)
        self._data = memoryview(b"")
        self._history = history
        self._starts: list[int] = []  # stream position of each chunk's first byte, the last `history`
        self._places: list[tuple[int, int] | None] = []  # its (partition, offset); None for plain bytes
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        while not self._data and size:
            item = next(self._chunks, None)
            if item is None:
                return b""
            self._starts.append(self.bytes_read)
            self._places.append((item.partition, item.offset) if isinstance(item, Chunk) else None)
            if len(self._starts) > 2 * self._history:
                del self._starts[: -self._history], self._places[: -self._history]
            self._data = memoryview(item.data if isinstance(item, Chunk) else item)
        out = self._data[:size].tobytes()
        self._data = self._data[size:]
        self.bytes_read += len(out)
        return out

    def resume_at(self, keyframe_pos: int) -> tuple[int, int] | None:
        """``(partition, offset)`` of the chunk to read again from so that decoding restarts at
        the video keyframe whose packet had ``pos == keyframe_pos``: the chunk that holds the PAT
        and PMT which the TS muxer writes just before every keyframe (a reader needs them to find
        the streams). Commit that offset when everything before the keyframe is durable. None
        when the position is older than the last ``history`` chunks or came as plain bytes."""
        position = max(0, keyframe_pos - 2 * TS_PACKET_BYTES)
        i = bisect.bisect_right(self._starts, position) - 1
        return self._places[i] if i >= 0 else None
