"""Kafka in and out (pipelines.kafka.streams) against a real Kafka-protocol broker (Tansu, see
tests/kafka_fixture.py): a published file comes back chunk for chunk and decodes like the
original; streams sharing a partition stay apart; malformed messages go to the dead-letter topic;
a consumer group resumes at its commit; events round-trip as JSON.

The clips: 6 s 320x240 and 3 s 160x120, 30 fps with a keyframe every 30 frames, AAC at 48 kHz.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import pytest

from media import SCENES, SOUNDS
from pipelines.demo.synth import GroundTruth, Scene, build_video

with warnings.catch_warnings():  # kafka-python 3.0.12 loads its schemas with importlib.resources' legacy calls
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from pipelines.kafka.events import EventPublisher, encode_event, publish_events
    from pipelines.kafka.streams import Chunk, ChunkReader, KafkaStreams, KafkaTarget, mpegts_chunks, parse_kafka_url, publish

pytest_plugins = ["kafka_fixture"]

SMALL_CHUNK = 188 * 50  # ~25 chunks for the 6 s clip: enough to interleave, commit half, ...
_topics = itertools.count()


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, tuple[Path, GroundTruth]]:
    directory = tmp_path_factory.mktemp("kafka_clips")
    long, short, mkv = directory / "six.mp4", directory / "three.mp4", directory / "three.mkv"
    three = (Scene("cat", 1.5), Scene("rocket", 1.5))
    return {
        "six": (long, build_video(long, SCENES, SOUNDS, width=320, height=240, gop=30)),
        "three": (short, build_video(short, three, width=160, height=120, gop=30)),
        "three_mkv": (mkv, build_video(mkv, three, width=160, height=120)),
    }


@pytest.fixture
def topic_url(kafka_bootstrap) -> Callable[[], tuple[str, str]]:
    """A fresh topic for each call: ``(topic, "kafka://.../topic")``."""

    def make() -> tuple[str, str]:
        topic = f"test-{next(_topics)}-{time.monotonic_ns()}"
        return topic, f"kafka://{kafka_bootstrap}/{topic}"

    return make


def consume(streams: KafkaStreams, enough: Callable[[list[Chunk]], bool], timeout_s: float = 20.0) -> list[Chunk]:
    """Poll until ``enough(chunks)``; the first polls wait for the group join (~3 s)."""
    chunks: list[Chunk] = []
    deadline = time.monotonic() + timeout_s
    while not enough(chunks):
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout_s} s only {len(chunks)} chunks, {streams.dead_letters} dead letters")
        chunks += streams.poll(0.5)
    return chunks


def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 15.0) -> list:
    """The first ``count`` records of every partition of ``topic``, without a group."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} never appeared")
            time.sleep(0.1)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records = []
        while len(records) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: only {len(records)} of {count} records after {timeout_s} s")
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
        return records
    finally:
        consumer.close(autocommit=False)


@dataclass
class Decoded:
    video_seconds: list[float]
    width: int
    height: int
    audio_seconds: list[float]
    audio_samples: int
    sample_rate: int


def decode(chunks: list[Chunk]) -> Decoded:
    """Everything the chunks hold, through ChunkReader, as any MPEG-TS stream is read."""
    with av.open(ChunkReader(chunks), format="mpegts") as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames, audio_starts, samples, size = [], [], 0, None
        for packet in container.demux(video, audio):
            for frame in packet.decode():
                if packet.stream is video:
                    frames.append(float(frame.pts * frame.time_base))
                    size = (frame.width, frame.height)
                else:
                    audio_starts.append(float(frame.pts * frame.time_base))
                    samples += frame.samples
        return Decoded(sorted(frames), *size, audio_starts, samples, audio.sample_rate)


def assert_decodes_like(chunks: list[Chunk], truth: GroundTruth) -> None:
    got = decode(chunks)
    frame_s = 1 / truth.frames_per_second
    assert (got.width, got.height) == (truth.width, truth.height)
    assert abs(len(got.video_seconds) - truth.frame_count) <= 1, f"{len(got.video_seconds)} frames, truth {truth.frame_count}"
    steps = [b - a for a, b in zip(got.video_seconds, got.video_seconds[1:])]
    assert all(abs(step - frame_s) < 1e-3 for step in steps), "frames must be one frame period apart, increasing"
    assert abs(got.video_seconds[-1] + frame_s - got.video_seconds[0] - truth.duration_seconds) <= frame_s
    # Audio: contiguous frames covering the content, plus AAC priming (before) and padding (after).
    priming_s = truth.audio_priming_samples / got.sample_rate
    assert got.sample_rate == truth.sample_rate
    ends = [start + 1024 / got.sample_rate for start in got.audio_seconds]  # AAC frames: 1024 samples
    assert all(abs(b - e) < 1e-4 for e, b in zip(ends, got.audio_seconds[1:])), "audio frames must be contiguous"
    audio_s = got.audio_samples / got.sample_rate
    assert truth.duration_seconds <= audio_s <= truth.duration_seconds + 2 * priming_s + 1e-9
    # Stream copy keeps the two clocks together: the primed audio starts that much before the picture.
    assert abs(got.video_seconds[0] - got.audio_seconds[0] - priming_s) < 1e-3


# -- without a broker -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, target",
    [
        ("kafka://127.0.0.1:19092/cams", KafkaTarget("127.0.0.1:19092", "cams")),
        ("kafka://broker/cams.live_1-a", KafkaTarget("broker:9092", "cams.live_1-a")),
        ("KAFKA://a:1,b:2/t", KafkaTarget("a:1,b:2", "t")),
        ("kafka://[::1]:9093/t", KafkaTarget("[::1]:9093", "t")),
    ],
)
def test_parse_kafka_url(url, target):
    assert parse_kafka_url(url) == target


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://h:1/t", "not a Kafka URL"), ("h:1/t", "not a Kafka URL"), ("kafka:///t", "no broker"),
        ("kafka://h:1", "no topic"), ("kafka://h:1/", "no topic"), ("kafka://h:1/a/b", "not a Kafka topic name"),
        ("kafka://h:1/a?x=1", "not a Kafka topic name"), ("kafka://h:x/t", "is not HOST or HOST:PORT"),
        ("kafka://h:70000/t", "outside 1-65535"), ("kafka://h:1,/t", "is not HOST or HOST:PORT"),
    ],
)  # fmt: skip
def test_parse_kafka_url_says_what_is_wrong(url, words):
    with pytest.raises(ValueError, match=words):
        parse_kafka_url(url)


def test_chunks_are_whole_packets_and_cut_by_media_time(clips):
    path, _ = clips["six"]
    whole = list(mpegts_chunks(str(path), chunk_bytes=188 * 5000, max_chunk_seconds=None, realtime=False))
    by_time = list(mpegts_chunks(str(path), chunk_bytes=188 * 5000, max_chunk_seconds=1.0, realtime=False))
    assert len(whole) == 1  # 6 s of 320x240 is ~240 KB: one chunk when only size cuts
    assert 5 <= len(by_time) <= 7  # one a second of media
    assert b"".join(by_time) == whole[0]  # the same deterministic mux, cut differently
    assert all(len(c) % 188 == 0 and c[::188] == b"\x47" * (len(c) // 188) for c in by_time)
    with pytest.raises(ValueError, match="multiple of 188"):
        next(mpegts_chunks(str(path), chunk_bytes=1000))


def stamps(file, *, damaged_ok: bool = False) -> dict[str, list[int]]:
    """Every decoded frame's pts in 1/90000 s (the TS clock), per stream type. A packet the
    decoder rejects fails the call, unless ``damaged_ok`` (reading from the middle of a packet:
    the product's Decoder skips such packets the same way)."""
    with av.open(file, format="mpegts" if isinstance(file, ChunkReader) else None) as container:
        out = {"video": [], "audio": []}
        for packet in container.demux(*container.streams.video, *container.streams.audio):
            try:
                frames = packet.decode()
            except av.InvalidDataError:
                if not damaged_ok:
                    raise
                continue
            for frame in frames:
                kind = "video" if isinstance(frame, av.VideoFrame) else "audio"
                out[kind].append(round(frame.pts * frame.time_base * 90_000))
        return {kind: sorted(pts) for kind, pts in out.items()}


def test_remux_keeps_every_frame_and_timestamp(clips):
    # Matroska leaves the dts of B-frame streams' first packets unset: they must not be dropped.
    for clip in ("three_mkv", "six"):
        path, truth = clips[clip]
        source = stamps(str(path))
        remuxed = stamps(ChunkReader(mpegts_chunks(str(path), chunk_bytes=SMALL_CHUNK, realtime=False)))
        assert len(remuxed["video"]) == truth.frame_count, clip
        shift = remuxed["video"][0] - source["video"][0]  # MP4's negative dts moves it by 2 frames
        assert shift == (0 if clip == "three_mkv" else 6000), clip
        expected = {kind: [t + shift for t in pts] for kind, pts in source.items()}
        if clip == "six":  # MP4's edit list hid the AAC priming frame (1024 samples); TS has none to hide it
            expected["audio"].insert(0, expected["audio"][0] - 1024 * 90_000 // truth.sample_rate)
        assert remuxed == expected, clip


def test_resume_at_names_the_chunk_that_restarts_decoding_at_a_keyframe(clips):
    path, truth = clips["six"]  # a keyframe every 30 frames: at 0, 1, ..., 5 s
    chunks = [Chunk("cam", 0, offset, data) for offset, data in
              enumerate(mpegts_chunks(str(path), chunk_bytes=SMALL_CHUNK, max_chunk_seconds=None, realtime=False))]  # fmt: skip
    reader = ChunkReader(chunks)
    with av.open(reader, format="mpegts") as container:
        keyframes = [(p.pts, p.pos) for p in container.demux(video=0) if p.is_keyframe and p.size]
    assert len(keyframes) == 6
    starts = list(itertools.accumulate((len(c.data) for c in chunks), initial=0))
    missed = 0
    for n, (pts, pos) in enumerate(keyframes[1:], start=1):
        partition, offset = reader.resume_at(pos)
        assert partition == 0 and starts[offset] <= pos < starts[offset + 2], "the keyframe's chunk or the one before"
        restarted = stamps(ChunkReader(chunks[offset:]))["video"]
        assert restarted[0] == pts, "decoding restarts exactly at that keyframe"
        assert len(restarted) == truth.frame_count - 30 * n
        if pos < starts[offset + 1]:  # the keyframe starts in that chunk: one chunk later misses it
            # (it starts inside a packet, which the decoder rejects; after the last keyframe no
            # frame decodes at all, there being no SPS/PPS to start from)
            assert all(t > pts for t in stamps(ChunkReader(chunks[offset + 1 :]), damaged_ok=True)["video"])
            missed += 1
    assert missed >= 3


def test_events_are_checked_before_sending():
    event = {"type": "highlight", "source": "cam", "source_id": "s1", "stream_start": 1.0, "stream_end": 2.0,
             "wall_start": "2025-01-01T00:00:01.000+00:00", "wall_end": "2025-01-01T00:00:02.000+00:00", "score": 0.9,
             "labels": ["crowd"], "reason": "cheering", "clip": {"source_id": "s1", "start": 1.0, "end": 2.0}}  # fmt: skip
    assert json.loads(encode_event(event)) == event
    assert json.loads(encode_event({"type": "chapter", "source": "cam", "summary": "ü"}).decode()) == {
        "type": "chapter", "source": "cam", "summary": "ü"}  # fmt: skip
    for broken, words in [
        ({k: v for k, v in event.items() if k != "labels"}, r"lacks or mistypes \['labels'\]"),
        ({**event, "score": float("nan")}, "not JSON-serialisable"),
        ({**event, "stream_start": 3.0}, "is after stream_end"),
        ({**event, "wall_end": "2025-01-01T00:00:02"}, "has no timezone"),
        ({**event, "wall_end": "yesterday"}, "not ISO 8601"),
        ({**event, "clip": {"start": 1.0, "end": 2.0}}, "clip needs source_id"),
        ({"source": "cam"}, "string 'type' and 'source'"),
    ]:
        with pytest.raises(ValueError, match=words):
            encode_event(broken)


# -- with the broker ------------------------------------------------------------------------------


def test_published_file_comes_back_in_order_and_decodes(kafka_bootstrap, topic_url, clips):
    path, truth = clips["six"]
    topic, url = topic_url()
    report = publish(str(path), url, name="cam", realtime=False, chunk_bytes=SMALL_CHUNK, max_chunk_seconds=None)
    expected = list(mpegts_chunks(str(path), chunk_bytes=SMALL_CHUNK, max_chunk_seconds=None, realtime=False))
    assert report.messages == len(expected) >= 20 and report.bytes == sum(map(len, expected))
    with KafkaStreams(url, group_id="whole") as streams:
        chunks = consume(streams, lambda got: len(got) >= report.messages)
    assert len(chunks) == report.messages and {c.name for c in chunks} == {"cam"}
    assert len({c.partition for c in chunks}) == 1, "one key, one partition"
    assert [c.offset for c in chunks] == list(range(chunks[0].offset, chunks[0].offset + len(chunks)))
    assert all(len(c.data) == SMALL_CHUNK for c in chunks[:-1]) and 0 < len(chunks[-1].data) <= SMALL_CHUNK
    assert [c.data for c in chunks] == expected
    records = read_topic(kafka_bootstrap, topic, report.messages)
    assert [(r.key, r.headers) for r in records] == [(b"cam", [("seq", str(n).encode())]) for n in range(report.messages)]
    assert_decodes_like(chunks, truth)


def test_two_streams_in_one_partition_are_kept_apart(kafka_bootstrap, topic_url, clips):
    topic, url = topic_url()
    sources = {name: list(mpegts_chunks(str(clips[clip][0]), chunk_bytes=SMALL_CHUNK, realtime=False))
               for name, clip in (("cam-a", "six"), ("cam-b", "three"))}  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all")
    for pair in itertools.zip_longest(*[[(name, n, c) for n, c in enumerate(cs)] for name, cs in sources.items()]):
        for name, n, chunk in filter(None, pair):  # a, b, a, b, ... then the rest of a
            producer.send(topic, key=name.encode(), value=chunk, partition=0, headers=[("seq", str(n).encode())])
    producer.flush()
    producer.close()
    total = sum(map(len, sources.values()))
    with KafkaStreams(url, group_id="apart") as streams:
        chunks = consume(streams, lambda got: len(got) >= total)
    by_name = {name: [c for c in chunks if c.name == name] for name in sources}
    assert {c.name for c in chunks} == set(sources)
    for name, expected in sources.items():
        assert [c.data for c in by_name[name]] == expected, name
    assert_decodes_like(by_name["cam-a"], clips["six"][1])
    assert_decodes_like(by_name["cam-b"], clips["three"][1])


def test_malformed_messages_go_to_the_dead_letter_topic(kafka_bootstrap, topic_url, clips):
    path, truth = clips["six"]
    topic, url = topic_url()
    good = list(mpegts_chunks(str(path), chunk_bytes=SMALL_CHUNK, max_chunk_seconds=None, realtime=False))
    half = len(good) // 2
    bad_sync = good[0][:188] + b"\x00" + good[0][189:376]  # its second packet lost the sync byte
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)

    def send(key: bytes | None, value: bytes) -> int:
        return producer.send(topic, key=key, value=value, partition=0).get(timeout=10).offset

    for chunk in good[:half]:
        send(b"cam", chunk)
    bad = {"hello": (b"cam", b"hello"), "unkeyed": (None, good[half]), "unsynced": (b"cam", bad_sync)}
    offsets = {what: send(*message) for what, message in bad.items()}
    for chunk in good[half:]:
        send(b"cam", chunk)
    bad["empty"] = (b"cam", b"")
    offsets["empty"] = send(b"cam", b"")  # the partition's last message
    producer.close()

    with KafkaStreams(url, group_id="dead") as streams:
        chunks = consume(streams, lambda got: len(got) >= len(good) and streams.dead_letters >= 4)
        assert streams.dead_letters == 4
        assert [c.data for c in chunks] == good  # the stream goes on around them
        streams.done(chunks)
        assert streams.commit() == {(topic, 0): offsets["empty"] + 1}, "a trailing dead letter counts as processed"
    assert_decodes_like(chunks, truth)

    reasons = {
        "hello": "not MPEG-TS: 5 bytes is not a whole number of 188-byte packets",
        "unkeyed": "no key",
        "unsynced": "not MPEG-TS: packet 1 does not start with the 0x47 sync byte",
        "empty": "empty value",
    }
    letters = read_topic(kafka_bootstrap, f"{topic}.dead-letter", 4)
    by_offset = {int(dict(r.headers)["source-offset"]): r for r in letters}
    assert sorted(by_offset) == sorted(offsets.values())
    for what, offset in offsets.items():
        letter, headers = by_offset[offset], dict(by_offset[offset].headers)
        assert (letter.key, letter.value) == bad[what]
        assert headers["reason"].decode().startswith(reasons[what]), (what, headers["reason"])
        assert (headers["source-topic"], headers["source-partition"]) == (topic.encode(), b"0")


def test_a_new_member_of_the_group_resumes_at_the_commit(topic_url, clips):
    path, truth = clips["six"]
    topic, url = topic_url()
    report = publish(str(path), url, name="cam", realtime=False, chunk_bytes=SMALL_CHUNK, max_chunk_seconds=None)
    with KafkaStreams(url, group_id="resume") as first:
        seen = consume(first, lambda got: len(got) >= report.messages)
        k, partition = len(seen) // 2, seen[0].partition
        assert first.committable() == {(topic, partition): seen[0].offset}, "nothing is done yet"
        first.done(seen[:k] + [seen[k + 1]])  # chunk k is still being indexed
        assert first.commit() == {(topic, partition): seen[k].offset}
        assert first.commit() == {}, "nothing new to commit"
    with KafkaStreams(url, group_id="resume") as second:
        rest = consume(second, lambda got: got and got[-1].offset >= seen[-1].offset)
        rest += second.poll(1.0)  # anything more would be a chunk read twice
    assert [c.offset for c in rest] == [c.offset for c in seen[k:]], "no chunk twice, none missing"
    assert [c.data for c in rest] == [c.data for c in seen[k:]]
    assert_decodes_like(seen[:k] + rest, truth)


def test_realtime_publishing_follows_the_media_clock(kafka_bootstrap, topic_url, clips):
    path, truth = clips["three"]
    topic, url = topic_url()
    started = time.monotonic()
    report = publish(str(path), url, name="cam", realtime=True)
    wall_s = time.monotonic() - started
    assert 2.5 <= report.wall_seconds <= wall_s <= truth.duration_seconds + 1.5
    records = read_topic(kafka_bootstrap, topic, report.messages)
    sent_ms = [r.timestamp for r in records]
    # ~40 KB/s is far below chunk_bytes: chunks go out each second of media, not all at the end.
    assert report.messages >= 3 and max(sent_ms) - min(sent_ms) >= 1500, sent_ms


def test_stop_ends_publishing_early_with_what_was_sent_decodable(kafka_bootstrap, topic_url, clips):
    path, truth = clips["six"]
    topic, url = topic_url()
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    report = publish(str(path), url, name="cam", realtime=True, stop=stop)
    assert report.wall_seconds < 2.0
    records = read_topic(kafka_bootstrap, topic, report.messages)
    frames = decode([Chunk("cam", r.partition, r.offset, r.value) for r in records]).video_seconds
    assert 15 <= len(frames) <= 45, f"~1 s of 30 fps expected, got {len(frames)} frames"


def test_events_round_trip_as_json(kafka_bootstrap, topic_url):
    topic, url = topic_url()
    event = {"type": "highlight", "source": "cam", "source_id": "s1", "stream_start": 12.0, "stream_end": 18.5,
             "wall_start": "2025-01-01T12:00:12.000+00:00", "wall_end": "2025-01-01T12:00:18.500+00:00", "score": 0.83,
             "labels": ["crowd", "applause"], "reason": "cheering and a shot change",
             "clip": {"source_id": "s1", "start": 12.0, "end": 18.5}}  # fmt: skip
    with EventPublisher(url) as publisher:
        publisher.send(event, key="cam")
    later = [{**event, "stream_start": 30.0, "stream_end": 31.0, "clip": {"source_id": "s1", "start": 30.0, "end": 31.0}},
             {"type": "chapter", "source": "cam", "summary": "a cat, then coffee"}]  # fmt: skip
    assert publish_events(url, later) == 2
    records = sorted(read_topic(kafka_bootstrap, topic, 3), key=lambda r: r.offset)
    assert [r.key for r in records] == [b"cam"] * 3
    assert [json.loads(r.value.decode("utf-8")) for r in records] == [event, *later]


def test_hostile_keys_and_streams_past_the_cap_go_to_the_dead_letter_topic(kafka_bootstrap, topic_url, clips):
    # Issue 10: a key names the stream's files under DATA/live/, so "../profile" replaced
    # DATA/profile.json and "../../escaped" wrote outside the data folder; every key held threads.
    path, _ = clips["six"]
    topic, url = topic_url()
    chunk = next(iter(mpegts_chunks(str(path), chunk_bytes=SMALL_CHUNK, max_chunk_seconds=None, realtime=False)))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    hostile = [b"../profile", b"../../escaped", b"/tmp/abs", b"a/b", b".hidden", b"x" * 129]
    for key in [*hostile, b"cam-1", b"cam-2", b"cam-3", b"cam-1"]:
        producer.send(topic, key=key, value=chunk, partition=0).get(timeout=10)
    producer.close()
    with KafkaStreams(url, group_id="hostile", max_streams=2) as streams:
        chunks = consume(streams, lambda got: len(got) >= 3 and streams.dead_letters >= len(hostile) + 1)
        assert [c.name for c in chunks] == ["cam-1", "cam-2", "cam-1"]  # the first two streams, whole
        assert streams.dead_letters == len(hostile) + 1
    letters = {r.key: dict(r.headers)["reason"].decode() for r in read_topic(kafka_bootstrap, f"{topic}.dead-letter", 7)}
    assert set(letters) == {*hostile, b"cam-3"}
    assert all("is not a stream name" in letters[key] for key in hostile)
    assert "would be stream 3" in letters[b"cam-3"] and "at most 2" in letters[b"cam-3"]


def test_stream_names_are_one_plain_file_name_part():
    from pipelines.ingest.sources import stream_name_problem

    for good in ("cam-1", "Front_Door.2", "0", "x" * 128):
        assert stream_name_problem(good) is None, good
    for bad in ("", "../profile", "a/b", "/abs", ".hidden", "-dash", "x" * 129, "caf\u00e9", "a b", "a\\b"):
        assert "is not a stream name" in stream_name_problem(bad), bad
    with pytest.raises(ValueError, match="is not a stream name"):
        publish("nothing.mp4", "kafka://127.0.0.1:1/t", name="../profile")
