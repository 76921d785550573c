"""Soak: a live stream for hours and a Kafka stream killed ten times; nothing lost, nothing grows.

    python bench/soak.py                          # 120 min of camera stream at 6x, then Kafka
    python bench/soak.py --stream-minutes 30 --rate 4 --kafka-minutes 10 --kills 5

Camera. An ffmpeg sender loops a 2-minute 640x360 video (real photos, speech, crowd) over UDP at
``--rate`` times real time (``-readrate``) for ``--stream-minutes`` of stream time; ``vidscope
live`` ingests it (no speech model, so the encoders keep up at that rate on 2 cores). Every 10 s
the stream's status (index lag: stream read but not yet indexed; thinned/dropped segments; the
last periodic save's seconds) and
the resident memory of every process of the run are sampled. At the end: every 2-s window of the
stream is in the index once (contiguous, none missing), and the first and last quarters of the
run are compared: save time, RSS, lag. A pipeline that leaks or whose saves grow with the index
shows it here.

Kafka. A Tansu broker; ``--kafka-minutes`` of the same video published as one stream; ``vidscope
live kafka://`` started, and ``kill -9``-ed (its whole process group, Ray with it) at ``--kills``
random moments, started again each time; at the end every window of the publish is in the index
exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pipelines.demo import synth  # noqa: E402
from test_live import free_udp_port  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
S = 1_000_000_000
WINDOW_NS = 2 * S


def loop_file() -> Path:
    path = CACHE / "soak_2min_360p.mp4"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        script = synth.bench_script(120)
        print(f"building {path.name} ...", flush=True)
        synth.build_video(path, script.scenes, script.sounds, width=640, height=360, fps=30, preset="veryfast", gop=30)
    return path


def vidscope(*argv: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *argv], cwd=ROOT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, **popen)


def tree_rss_mib(pid: int) -> dict[str, float]:
    """Resident MiB of a process and its descendants, by name (Ray names its workers ray::Class)."""
    out: dict[str, float] = {}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            name = p.name() if p.name().startswith("ray::") else ("driver" if p.pid == pid else p.name())
            out[name] = out.get(name, 0.0) + p.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return out


def starts_in(data: Path) -> list[int]:
    with sqlite3.connect(data / "vidscope.sqlite3") as db:
        return [a for (a,) in db.execute("select start_ns from segments order by start_ns")]


def quarters(values: list[float]) -> list[float]:
    """The mean of each quarter of the run: flat, or still growing at the end?"""
    n = max(1, len(values) // 4)
    return [statistics.fmean(values[i * n:(i + 1) * n] if i < 3 else values[3 * n:]) for i in range(4)]


def camera(minutes: float, rate: float, work: Path) -> bool:
    data, port = work / "camera", free_udp_port()
    status_path = data / "live" / "soak.json"
    live = vidscope("live", f"udp://127.0.0.1:{port}", "--name", "soak", "--data", str(data), "--no-speech", "--json",
                    stdout=subprocess.PIPE, stderr=open(work / "camera.log", "w"))
    deadline = time.monotonic() + 180
    while not status_path.exists():
        if time.monotonic() > deadline or live.poll() is not None:
            print("FAIL: vidscope live did not start; see", work / "camera.log")
            return False
        time.sleep(0.5)
    sender = subprocess.Popen([synth.find_ffmpeg(), "-loglevel", "error", "-stream_loop", "-1", "-readrate", str(rate),
                               "-i", str(loop_file()), "-t", str(minutes * 60), "-c", "copy", "-f", "mpegts",
                               f"udp://127.0.0.1:{port}?pkt_size=1316"])
    samples = []
    started = time.monotonic()
    print(f"camera: {minutes:g} min of stream at {rate:g}x: ~{minutes / rate:.0f} min", flush=True)
    while sender.poll() is None:
        time.sleep(10)
        try:
            status = json.loads(status_path.read_text())
        except (OSError, ValueError):
            continue
        rss = tree_rss_mib(live.pid)
        # At a sped-up rate the stream runs ahead of the wall clock, so the lag that matters is the
        # backlog: seconds of stream read and not yet indexed.
        backlog_s = (status.get("segments_read", 0) - status.get("segments_indexed", 0)) * WINDOW_NS / S
        samples.append({"t": time.monotonic() - started, "lag": backlog_s,
                        "save": status.get("save_seconds", 0.0), "indexed": status.get("segments_indexed", 0),
                        "dropped": status.get("segments_dropped", 0), "thinned": status.get("segments_thinned", 0),
                        "rss": rss, "rss_total": sum(rss.values())})
    time.sleep(5)
    live.send_signal(signal.SIGTERM)
    out, _ = live.communicate(timeout=300)
    starts = starts_in(data)
    gaps = [(a / S, b / S) for a, b in zip(starts, starts[1:]) if b - a != WINDOW_NS]
    expected = int(minutes * 60 * S // WINDOW_NS)
    last = samples[-1] if samples else {}
    print(f"camera: exit {live.returncode}; {len(starts)} windows indexed of {expected} sent "
          f"(the reader joins a second or two in); gaps {gaps[:5]}{'...' if len(gaps) > 5 else ''}; "
          f"thinned {last.get('thinned')}, dropped {last.get('dropped')}")
    if len(samples) >= 8:
        print(f"  {'mean per quarter of the run':<34} {'1st':>8} {'2nd':>8} {'3rd':>8} {'4th':>8}   4th/1st")
        for key, what in (("save", "periodic save (s)"), ("rss_total", "RSS, all processes (MiB)"),
                          ("lag", "index lag: read, not indexed (s)")):
            q = quarters([s[key] for s in samples])
            print(f"  {what:<34} " + " ".join(f"{v:8.3f}" for v in q) + f"   {q[3] / max(q[0], 1e-9):.2f}")
        for name in sorted(samples[-1]["rss"]):
            q = quarters([s["rss"].get(name, 0.0) for s in samples])
            print(f"    {name:<32} " + " ".join(f"{v:8.0f}" for v in q) + " MiB")
        (work / "camera-samples.json").write_text(json.dumps(samples))
    return live.returncode == 0 and not gaps and len(starts) >= expected - 3


def kafka(minutes: float, kills: int, work: Path, seed: int) -> bool:
    from kafka_fixture import TansuBroker, tansu_binary

    rng = random.Random(seed)
    broker = TansuBroker(tansu_binary(), work / "tansu.log")
    broker.start()
    try:
        media = work / "kafka.mp4"
        subprocess.run([synth.find_ffmpeg(), "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(loop_file()),
                        "-t", str(minutes * 60), "-c", "copy", str(media)], check=True)
        url, data = f"kafka://{broker.bootstrap}/soak", work / "kafka"
        publish = vidscope("publish", str(media), url, "--name", "soak", stdout=subprocess.DEVNULL)
        expected = [t * WINDOW_NS for t in range(int(minutes * 60 * S // WINDOW_NS))]
        runs, killed, log = 0, 0, open(work / "kafka.log", "w")
        started = time.monotonic()
        while True:
            live = vidscope("live", url, "--data", str(data), "--no-speech", "--json", stdout=subprocess.DEVNULL,
                            stderr=log, start_new_session=True)
            runs += 1
            if killed < kills:
                time.sleep(rng.uniform(20, 60))  # start-up is ~15 s: some kills land mid-start, most mid-stream
                os.killpg(live.pid, signal.SIGKILL)
                live.wait()
                killed += 1
                print(f"kafka: kill -9 #{killed} after {time.monotonic() - started:.0f} s, "
                      f"{len(starts_in(data)) if (data / 'vidscope.sqlite3').exists() else 0} windows indexed", flush=True)
                continue
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline and [a for a in starts_in(data) if a in set(expected)] != expected:
                time.sleep(2)
            live.send_signal(signal.SIGTERM)
            live.wait(timeout=300)
            break
        publish.wait(timeout=60)
        starts = starts_in(data)
        full = [a for a in starts if a in set(expected)]
        extra = sorted(set(starts) - set(expected))
        duplicates = len(starts) - len(set(starts))
        print(f"kafka: {runs} runs, {killed} kill -9; {len(full)} of {len(expected)} windows indexed, "
              f"{duplicates} twice, {len(extra)} off the grid {[a / S for a in extra[:5]]}; "
              f"{time.monotonic() - started:.0f} s; exit {live.returncode}")
        return full == expected and duplicates == 0 and live.returncode == 0
    finally:
        broker.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream-minutes", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=6.0)
    parser.add_argument("--kafka-minutes", type=float, default=20.0)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--skip", choices=("camera", "kafka"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vidscope-soak-"))
    print(f"working in {work}", flush=True)
    ok = True
    if args.skip != "camera":
        ok &= camera(args.stream_minutes, args.rate, work)
    if args.skip != "kafka":
        ok &= kafka(args.kafka_minutes, args.kills, work, args.seed)
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
