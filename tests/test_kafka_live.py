"""``vidscope live kafka://``: a stream published on a real Kafka-protocol broker (Tansu) is indexed
while it plays, survives ``vidscope`` being killed mid-stream (each segment once, none missing),
and a garbage message goes to the dead-letter topic while the stream goes on."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kafka import KafkaProducer

from pipelines.kafka.streams import publish
from pipelines.demo.synth import Scene, build_video
from test_kafka_io import read_topic, topic_url  # noqa: F401 - a fresh topic per call
from test_live import cli, read_status, wait_for

pytest_plugins = ["kafka_fixture"]
S = 1_000_000_000


def start_live(url: str, data: Path) -> subprocess.Popen:
    # A session of its own: SIGKILL to the group takes Ray's processes down with it, as a crash would.
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "live", url, "--data", str(data), "--no-speech",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def spans(data: Path) -> list[tuple[int, int]]:
    try:
        with sqlite3.connect(data / "vidscope.sqlite3") as db:
            return db.execute("select start_ns, end_ns from segments order by start_ns").fetchall()
    except sqlite3.Error:
        return []


def stream_committed(status: dict | None) -> bool:
    return any(offset > 1 for offset in ((status or {}).get("committed") or {}).values())


def whole(found: list[tuple[int, int]]) -> list[int]:
    """Start times, without a last window of a few ms (the video outlasts the audio by 21 ms)."""
    if found and found[-1][1] - found[-1][0] < S // 10:
        found = found[:-1]
    return [a for a, _ in found]


def full(found: list[tuple[int, int]]) -> list[int]:
    """Start times of the windows of a second or more (not the few-ms tail a publish ends on)."""
    return [a for a, b in found if b - a >= S]


@pytest.mark.slow
def test_a_kafka_stream_survives_a_killed_worker_each_segment_once_and_garbage_goes_to_the_dead_letters(
        kafka_bootstrap, topic_url, tmp_path):  # noqa: F811
    video = tmp_path / "feed.mp4"
    build_video(video, (Scene("cat", 12.0), Scene("coffee", 12.0)), (), width=320, height=240, gop=30)
    topic, url = topic_url()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(topic, key=b"feed", value=b"this is not MPEG-TS").get(timeout=10)
    producer.close()
    data = tmp_path / "data"
    status_path = data / "live" / "feed.json"
    first = start_live(url, data)
    second = None
    publisher = threading.Thread(target=publish, args=(str(video), url), kwargs={"name": "feed", "realtime": True})
    try:
        publisher.start()  # in real time, 24 s; the group reads the topic from its start, so nothing is missed
        # Killed once some of it is indexed and committed, while the rest is still being published.
        # The garbage message went first, under the same key, so to the same partition: its commit
        # (offset 1) says nothing of the stream; a commit past it is one of the stream's chunks.
        wait_for(lambda: (len(spans(data)) >= 4 and stream_committed(read_status(status_path)))
                 or first.poll() is not None, 120, "4 segments indexed and a chunk of the stream committed")
        assert first.poll() is None, first.communicate()[1][-3000:]
        before = read_status(status_path)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        indexed_at_kill = len(spans(data))
        second = start_live(url, data)
        publisher.join(timeout=60)
        expected = [t * S for t in range(0, 24, 2)]
        try:
            wait_for(lambda: whole(spans(data)) == expected or second.poll() is not None, 120, "every segment")
        except AssertionError:
            second.send_signal(signal.SIGTERM)
            raise AssertionError(f"indexed {[a / S for a, _ in spans(data)]}; {second.communicate(timeout=60)[1][-4000:]}")
        assert second.poll() is None, second.communicate()[1][-3000:]
        status = wait_for(lambda: (s := read_status(status_path)) and s.get("stream_seconds", 0) >= 24 and s, 20,
                          "the second worker's status to reach the end")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        out, err = second.communicate(timeout=120) if second is not None else ("", "")
    assert second.returncode == 0, err[-3000:]
    print(f"killed with {indexed_at_kill} segments indexed, committed {before['committed']}; restart read "
          f"{status['segments_read']} and skipped {status['segments_skipped']}")
    # Every window once, none missing, none overlapping: a resumed decode gives the same times.
    found = spans(data)
    assert whole(found) == expected
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(found, found[1:]))
    # The restart resumed at the committed offset, not from the start of the topic.
    assert status["segments_read"] + status["segments_skipped"] < len(expected)
    assert status["segments_read"] >= len(expected) - indexed_at_kill
    (report,) = json.loads(out)
    assert report["name"] == "feed" and report["error"] is None
    # What is seen is where it is: the cat in the first 12 s, the coffee after.
    for query, (lo, hi) in (("a cat", (0, 12)), ("a cup of coffee", (12, 24))):
        hits = json.loads(cli("search", query, "--data", str(data), "--json").stdout)
        assert hits[0]["source"] == "feed" and lo <= hits[0]["start"] < hi, (query, hits[:2])
    (dead,) = read_topic(kafka_bootstrap, f"{topic}.dead-letter", 1)
    headers = dict(dead.headers)
    assert dead.key == b"feed" and dead.value == b"this is not MPEG-TS"
    assert b"not MPEG-TS" in headers["reason"] and headers["source-topic"] == topic.encode()
    assert status["dead_letters"] == 0 and before["dead_letters"] == 1  # the first worker met it and moved past


@pytest.mark.slow
def test_a_publish_after_vidscope_restarts_is_indexed_after_what_came_before(kafka_bootstrap, topic_url, tmp_path):  # noqa: F811
    # Issue 10: a redeploy used to place the next publish (seq 0 again) at stream time 0, on windows
    # already indexed: it was skipped as durable, never checkpointed, and its commits stuck. And the
    # analysis at the second stop re-scored the whole history with its own shots only, deleting the
    # first run's cuts: each run's cut (6 s into each publish) must be there at the end.
    first_file, second_file = tmp_path / "a.mp4", tmp_path / "b.mp4"
    build_video(first_file, (Scene("cat", 6.0), Scene("flower", 6.0)), (), width=320, height=240, gop=30)
    build_video(second_file, (Scene("coffee", 6.0), Scene("rocket", 6.0)), (), width=320, height=240, gop=30)
    topic, url = topic_url()
    data = tmp_path / "data"
    status_path = data / "live" / "feed.json"
    runs = []
    try:
        runs.append(start_live(url, data))
        publish(str(first_file), url, name="feed")
        wait_for(lambda: (len(whole(spans(data))) >= 6 and stream_committed(read_status(status_path)))
                 or runs[0].poll() is not None, 120, "the first publish indexed and committed")
        runs[0].send_signal(signal.SIGTERM)
        _, err = runs[0].communicate(timeout=120)
        assert runs[0].returncode == 0, err[-3000:]
        committed_before = read_status(status_path)["committed"]
        assert full(spans(data)) == [t * S for t in range(0, 12, 2)]

        runs.append(start_live(url, data))
        publish(str(second_file), url, name="feed")
        # After the first publish's last window (12.00-12.02 s: its video outlasts its audio) comes the
        # next grid line, 14 s: the second publish is 14-26 s of the stream.
        expected = [t * S for t in (*range(0, 12, 2), *range(14, 26, 2))]
        try:
            wait_for(lambda: full(spans(data)) == expected or runs[1].poll() is not None, 120, "the second publish")
            assert runs[1].poll() is None, runs[1].communicate()[1][-3000:]
        except AssertionError:
            runs[1].send_signal(signal.SIGTERM)
            raise AssertionError(f"indexed {[a / S for a, _ in spans(data)]}; {runs[1].communicate(timeout=60)[1][-4000:]}")
        # Its commits move on past the first publish's (nothing sticks behind the collision any more).
        wait_for(lambda: any(o > int(committed_before.get(p, 0)) for p, o in
                             ((read_status(status_path) or {}).get("committed") or {}).items()), 60, "a commit of the second publish")
    finally:
        for process in runs:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in runs:
            process.communicate(timeout=120)
    assert runs[1].returncode == 0
    found = spans(data)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(found, found[1:]))  # nothing overlaps
    for query, (lo, hi) in (("a cat", (0, 6)), ("a cup of coffee", (14, 20))):
        hits = json.loads(cli("search", query, "--data", str(data), "--json").stdout)
        assert hits[0]["source"] == "feed" and lo <= hits[0]["start"] < hi, (query, hits[:2])
    with sqlite3.connect(data / "vidscope.sqlite3") as db:
        cuts = [t / S for (t,) in db.execute("select t_ns from cuts order by t_ns")]
        scored = [t / S for (t,) in db.execute("select start_ns from highlight_scores order by start_ns")]
    assert [round(t) for t in cuts] == [6, 20], cuts  # the first run's cut is kept beside the second's
    assert scored[0] == 0.0 and scored[-1] >= 24.0, scored  # both runs' ranges scored


@pytest.mark.slow
def test_a_killed_topic_reader_is_replaced_and_the_stream_resumes_at_its_commits(kafka_bootstrap, topic_url, tmp_path):  # noqa: F811
    # Issue 10, hole 4: the topic's reader actor (the consumer and every stream's decoder) that
    # died ended the run's streams for good. Now the driver replaces it: the new consumer rejoins
    # the group at the committed offsets and each stream is planned again from the store.
    video = tmp_path / "feed.mp4"
    build_video(video, (Scene("cat", 12.0), Scene("coffee", 12.0)), (), width=320, height=240, gop=30)
    topic, url = topic_url()
    data = tmp_path / "data"
    status_path = data / "live" / "feed.json"
    live = start_live(url, data)
    publisher = threading.Thread(target=publish, args=(str(video), url), kwargs={"name": "feed", "realtime": True})
    try:
        publisher.start()
        first = wait_for(lambda: (s := read_status(status_path)) and len(spans(data)) >= 3 and stream_committed(s) and s,
                         120, "3 segments indexed and committed")
        os.kill(first["reader_pid"], signal.SIGKILL)
        wait_for(lambda: (s := read_status(status_path)) and s.get("restarts") == 1 and s["reader_pid"] != first["reader_pid"],
                 60, "the reader replaced")
        publisher.join(timeout=60)
        expected = [t * S for t in range(0, 24, 2)]
        wait_for(lambda: whole(spans(data)) == expected or live.poll() is not None, 120, "every segment")
    finally:
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=120)
    assert live.returncode == 0, err[-3000:]
    (report,) = json.loads(out)
    assert report["error"] is None and report["restarts"] == 1, report
    found = spans(data)
    assert whole(found) == expected  # each window once, none missing
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(found, found[1:]))
