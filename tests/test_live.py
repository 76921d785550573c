"""Live streams: the overload queue, the reconnect clock, and a real UDP stream end to end (an
ffmpeg sender in real time, ``vidscope live`` in a subprocess stopped by SIGTERM)."""

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from operators.media.live import Backoff, LiveReader, SegmentQueue
from operators.records import Segment, Span
from pipelines.demo.synth import Scene, Sound, Speech, build_video, find_ffmpeg

S = 1_000_000_000


def segment(i: int, frames: int = 2) -> Segment:
    span = Span(i * 2 * S, (i + 1) * 2 * S)
    pts = np.array([span.start_ns + k * (2 * S) // frames for k in range(frames)], np.int64)
    return Segment("cam", span, np.full((frames, 4, 4, 3), i, np.uint8), pts, None)


def test_queue_thins_past_half_then_drops_the_oldest_and_counts_both():
    queue = SegmentQueue(4)
    for i in range(6):
        queue.put(segment(i))
    assert queue.dropped == 2 and len(queue) == 4
    assert queue.thinned == 4  # every segment put while 2 or more waited kept one frame
    kept = [queue.get() for _ in range(4)]
    assert [s.span.start_ns // (2 * S) for s in kept] == [2, 3, 4, 5]  # the oldest went first
    assert [len(s.frames) for s in kept] == [1, 1, 1, 1]
    assert kept[0].frame_pts_ns.tolist() == [4 * S + S]  # the middle frame (of 2, at 4 s and 5 s), with its own time


def test_queue_under_half_keeps_every_frame_and_closes_cleanly():
    queue = SegmentQueue(10)
    queue.put(segment(0, frames=3))
    assert len(queue.get().frames) == 3 and queue.thinned == 0 and queue.dropped == 0
    queue.close()
    assert queue.get(timeout_s=0.01) is None
    with pytest.raises(ValueError):
        SegmentQueue(1)


def test_a_blocking_queue_waits_for_room_and_neither_thins_nor_drops():
    import threading

    queue = SegmentQueue(2, policy="block")
    put = threading.Thread(target=lambda: [queue.put(segment(i, frames=3)) for i in range(5)])
    put.start()
    time.sleep(0.3)
    assert len(queue) == 2 and put.is_alive()  # waiting for room
    got = [queue.get(timeout_s=2) for _ in range(5)]
    put.join(timeout=2)
    assert [s.span.start_ns // (2 * S) for s in got] == [0, 1, 2, 3, 4] and all(len(s.frames) == 3 for s in got)
    assert queue.thinned == queue.dropped == 0
    with pytest.raises(ValueError):
        SegmentQueue(4, policy="lossy")


def test_backoff_is_jittered_capped_and_grows():
    rng = random.Random(0)
    backoff = Backoff(initial_s=0.5, max_s=2.0)
    delays = [[backoff.delay_s(n, rng) for _ in range(200)] for n in range(6)]
    assert all(0.0 <= d <= min(2.0, 0.5 * 2**n) for n, ds in enumerate(delays) for d in ds)
    assert max(delays[0]) <= 0.5 < max(delays[2]) and max(delays[5]) <= 2.0
    assert len({round(d, 6) for d in delays[3]}) > 100  # jitter: not in lockstep


def test_reconnects_are_placed_at_their_arrival_and_never_go_back():
    now = [1_000 * S]
    reader = LiveReader("udp://127.0.0.1:9", clock=lambda: now[0])
    first = reader._offset(first_ns=5 * S)  # a stream whose PTS start at 5 s
    assert first == -5 * S and reader.anchor_wall_ns == 1_000 * S  # its first item is stream time 0
    reader.last_ns = 30 * S
    now[0] += 42 * S  # the sender came back 42 s after the anchor, its PTS restarting at 0
    assert reader._offset(first_ns=0) == 42 * S
    now[0] = 1_010 * S  # a clock step backwards must not move the stream back
    assert reader._offset(first_ns=0) == 30 * S + 1
    resumed = LiveReader("udp://127.0.0.1:9", anchor_wall_ns=900 * S, clock=lambda: 1_000 * S)
    assert resumed._offset(first_ns=0) == 100 * S  # a restarted worker continues the stream's clock
    # Issue 10: restarted after the wall clock stepped back (to 950 s: 50 s after the anchor) with
    # 120 s of the stream stored, it used to start at 50 s, reusing the ids of stored segments.
    stepped = LiveReader("udp://127.0.0.1:9", anchor_wall_ns=900 * S, clock=lambda: 950 * S, resume_after_ns=120 * S)
    assert stepped._offset(first_ns=0) == 120 * S


# -- a real stream ---------------------------------------------------------------------------------


def names_a_sound(event: dict) -> bool:
    """Whether a highlight event went out for something heard: a sound class among its labels,
    not only loudness, motion or speech."""
    return bool(set(event["labels"]) - {"loud", "fast motion", "rapid cuts", "emphatic speech"})


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(video: Path, port: int, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([find_ffmpeg(), "-loglevel", "error", "-re", "-i", str(video), "-t", str(seconds), "-c", "copy",
                             "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"])


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *argv], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_udp_stream_is_searchable_while_it_plays_survives_the_sender_restarting_and_stops_cleanly(tmp_path):
    video = tmp_path / "feed.mp4"  # keyframe every second: a receiver joining mid-stream sees pictures at once
    build_video(video, (Scene("cat", 8.0), Scene("coffee", 8.0)),
                (Speech("welcome to the camera feed", 1.0), Sound("crowd", 10.0, 4.0)), width=320, height=240, gop=30)
    test_started = datetime.now(timezone.utc)
    port, data = free_udp_port(), tmp_path / "data"
    status_path = data / "live" / "cam.json"
    live = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "live", f"udp://127.0.0.1:{port}", "--name", "cam",
                             "--data", str(data), "--no-speech", "--chapter-seconds", "8", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    senders = []
    try:
        wait_for(lambda: read_status(status_path), 120, "the live pipeline to start")
        senders.append(send(video, port, 16))
        # Searchable while it plays: the cat (0-8 s of the feed) is found before the feed ends.
        def cat_found():
            hits = json.loads(cli("search", "a cat", "--data", str(data), "--json").stdout or "[]")
            return hits if hits and hits[0]["source"] == "cam" and "cat" in hits[0]["description"].lower() else None
        wait_for(cat_found, 16, "the cat to be searchable while the stream plays")
        senders[0].wait(timeout=30)
        time.sleep(3)  # the stream is down
        restarted = time.monotonic()
        senders.append(send(video, port, 10))
        wait_for(lambda: (read_status(status_path) or {}).get("reconnects", 0) >= 1, 15, "a reconnect")
        reconnect_s = time.monotonic() - restarted
        print(f"reconnected {reconnect_s:.1f} s after the sender returned")
        status = read_status(status_path)
        senders[1].wait(timeout=30)
        time.sleep(1)
    finally:
        for sender in senders:
            sender.kill()
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=120)
    assert live.returncode == 0, err[-2000:]
    assert reconnect_s <= 7.0  # issue target: <= 5 s after the sender returns (+ up to 2 s of status polling)
    assert status["state"] == "streaming" and status["segments_dropped"] == 0
    (report,) = json.loads(out)
    assert report["name"] == "cam" and report["error"] is None and report["segments_indexed"] >= 10
    with sqlite3.connect(data / "vidscope.sqlite3") as db:
        spans = db.execute("select start_ns, end_ns from segments order by start_ns").fetchall()
        (name, state) = db.execute("select name, status from sources").fetchone()
    assert (name, state) == ("cam", "done")
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # monotonic, no overlap
    # The 3-s outage is a hole in stream time, not squeezed out (times follow the wall clock): the
    # status states it. The sender runs up to ~1 s ahead of the wall clock before it stops, and
    # noticing the drop and reopening adds the read timeout at most.
    assert 2.0 <= status["outage_seconds"] <= 3.0 + 5.0, status
    # Highlights went out as events while it played: the cheering (10-14 s into each play of the feed).
    everything = [json.loads(line) for line in (data / "live" / "cam.events.jsonl").read_text().splitlines()]
    events = [e for e in everything if e["type"] == "highlight"]
    assert events and all(e["source"] == "cam" for e in everything)
    # Chapters went out every 8 s of the stream, each summarised: the cat's, then the coffee's.
    chapters = [e for e in everything if e["type"] == "chapter"]
    assert len(chapters) >= 3 and all(b["stream_start"] >= a["stream_end"] for a, b in zip(chapters, chapters[1:]))
    assert "cat" in chapters[0]["text"].lower() and any(w in c["text"].lower() for c in chapters[1:] for w in ("coffee", "espresso", "cup")), chapters
    # The moment is the crowd's, and it went out because of what was heard: a sound class names it.
    # Which class YAMNet hears in a 2-s cut of this 11-kHz, AAC-coded recording depends on where the
    # live grid falls on it (a CI run heard "vehicle, engine" for its second half): whether sounds are
    # named right is the classifier's quality, measured on held-out media by bench/quality.py.
    first_play = spans[0][0] / S
    crowd = [e for e in events if first_play + 8.5 <= e["stream_start"] <= first_play + 14.0]
    assert crowd and names_a_sound(crowd[0]), (first_play, events)
    assert all(test_started <= datetime.fromisoformat(e["wall_start"]) <= datetime.now(timezone.utc) for e in events)
    summary = json.loads(cli("summary", "cam", "--data", str(data), "--json").stdout)
    assert summary["chapters"] and "cat" in summary["text"].lower()


@pytest.mark.slow
def test_a_stream_whose_reader_is_killed_gets_a_new_one_and_goes_on(tmp_path):
    # Issue 10, hole 4: a reader actor that died ended its stream for good (and a replacement
    # would have taken the first stream's anchor). Now the stream gets a fresh reader with its own
    # anchor, placed after what was read: the coffee, shown only after the kill, is found.
    video = tmp_path / "feed.mp4"
    build_video(video, (Scene("cat", 10.0), Scene("coffee", 12.0)), (), width=320, height=240, gop=30)
    port, data = free_udp_port(), tmp_path / "data"
    status_path = data / "live" / "cam.json"
    live = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "live", f"udp://127.0.0.1:{port}", "--name", "cam",
                             "--data", str(data), "--no-speech", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    sender = None
    try:
        first = wait_for(lambda: read_status(status_path), 120, "the live pipeline to start")
        sender = send(video, port, 22)
        wait_for(lambda: (read_status(status_path) or {}).get("segments_indexed", 0) >= 2, 30, "a first segment indexed")
        os.kill(first["reader_pid"], signal.SIGKILL)
        after = wait_for(lambda: (s := read_status(status_path)) and s.get("restarts") == 1
                         and s["reader_pid"] != first["reader_pid"] and s, 30, "the reader replaced")
        sender.wait(timeout=40)
        time.sleep(2)
    finally:
        if sender is not None:
            sender.kill()
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=120)
    assert live.returncode == 0, err[-2000:]
    (report,) = json.loads(out)
    assert report["error"] is None and report["restarts"] == 1, report
    assert after["state"] in ("streaming", "connecting", "reconnecting")
    with sqlite3.connect(data / "vidscope.sqlite3") as db:
        spans = db.execute("select start_ns, end_ns from segments order by start_ns").fetchall()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # the new reader goes after the old
    hits = json.loads(cli("search", "a cup of coffee", "--data", str(data), "--json").stdout)
    top = hits[0]["description"].lower() if hits else ""
    assert hits[0]["source"] == "cam" and any(w in top for w in ("coffee", "espresso", "cup")), hits[:2]
    assert hits[0]["start"] >= spans[0][0] / S + 8.0  # from the second reader: the feed's coffee starts at 10 s


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.slow
def test_an_overloaded_stream_thins_then_drops_counts_every_segment_and_its_memory_stays_flat(tmp_path):
    """The real reader actor on a real UDP stream sent at 3x real time, taken by a consumer
    slower than that (encoders that cannot keep up): what the queue cannot hold is thinned,
    then dropped, every segment read is either handed on or counted as dropped, and the
    reader's memory does not grow with the backlog."""
    import ray

    from operators.media.decode import DecodeConfig
    from operators.media.live import LiveConfig
    from pipelines.live.cameras import LiveSourceActor
    from pipelines.ingest.runtime import SourceReport

    video = tmp_path / "long.mp4"
    build_video(video, (Scene("cat", 30.0), Scene("coffee", 30.0)), (), width=640, height=360, gop=30)
    port = free_udp_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actor = LiveSourceActor.remote(LiveConfig(), 6, None, "live-overload")
        pid = ray.get(actor.pid.remote())
        gen = actor.segments.remote(f"udp://127.0.0.1:{port}", "live-overload", DecodeConfig(), 2 * S)
        sender = subprocess.Popen([find_ffmpeg(), "-loglevel", "error", "-readrate", "3", "-i", str(video), "-c", "copy",
                                   "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"])
        pulled, frames, memory = [], [], []
        try:
            while sender.poll() is None:
                segment = ray.get(next(gen))
                pulled.append(segment.span.start_ns)
                frames.append(len(segment.frames))
                memory.append(rss_mib(pid))
                time.sleep(1.5)  # 1.3 s of stream a second: the stream brings 6
            status = ray.get(actor.get_status.remote())
            actor.stop.remote()
            for ref in gen:
                item = ray.get(ref)
                if isinstance(item, SourceReport):
                    break
                pulled.append(item.span.start_ns)
                frames.append(len(item.frames))
            final = ray.get(actor.get_status.remote())
        finally:
            sender.kill()
    finally:
        ray.shutdown()
    print(f"pulled {len(pulled)}, status {final}, reader RSS {memory[len(memory) // 3]:.0f} -> {max(memory[len(memory) // 3:]):.0f} MiB")
    assert status["segments_dropped"] > 0 and status["segments_thinned"] > 0 and status["queue"] <= 6
    assert final["segments_read"] == len(pulled) + final["segments_dropped"]  # nothing lost without being counted
    assert pulled == sorted(pulled) and 1 in frames and max(frames) == 2  # thinned to one frame, in time order
    later = memory[len(memory) // 3:]
    assert max(later) - later[0] < 40, memory  # flat: bounded by the queue, not by the backlog


def test_a_stream_name_that_is_not_a_plain_file_name_is_refused_before_the_data_folder_is_touched(tmp_path):
    data = tmp_path / "data"
    for name in ("../profile", "a/b", "/abs"):
        run = cli("live", "udp://127.0.0.1:9", "--name", name, "--data", str(data))
        assert run.returncode == 2 and "is not a stream name" in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert not data.exists() and not (tmp_path / "profile.json").exists()
