"""Glass-to-searchable latency of one live 720p30 stream over UDP on loopback.

An ffmpeg sender plays a generated 720p30 video (real photos, speech, crowd; looped) in real time
to ``udp://127.0.0.1:P``; ``vidscope live`` ingests it with the default profile. A watcher polls
the store (what ``vidscope search`` reads: a segment committed there is returned by a query) and,
for every new segment, takes

    latency = (wall clock when it became searchable) - (wall clock when its last frame was sent)

where the send time is the sender's start plus the segment's end in media time (ffmpeg -re sends
media time m at start + m; the stream's first item, media time ~0, sits at the stream time the
reader reports as ``connection_start_seconds``). Prints p50/p95/max, the lag the pipeline reported over the run
(flat or growing), drops, and peak RSS of every process.

Targets (issue 4): p50 <= window + 1.5 s, p95 <= window + 3 s, lag flat.

    python bench/live.py --minutes 5            # speech on (default profile)
    python bench/live.py --minutes 5 --no-speech
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.demo import synth  # noqa: E402

CACHE = ROOT / "bench" / ".cache"


def stream_file() -> Path:
    path = CACHE / "live_1min_720p30.mp4"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        script = synth.bench_script(60)
        print(f"building {path.name} ...", flush=True)
        synth.build_video(path, script.scenes, script.sounds, width=1280, height=720, fps=30, preset="veryfast", gop=60)
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss(process: psutil.Process) -> int:
    """RSS of the CLI, everything it started, and every Ray worker process, each counted once."""
    processes = {p.pid: p for p in [process, *process.children(recursive=True)]}
    for p in psutil.process_iter(["cmdline"]):
        if any("ray::" in part for part in (p.info["cmdline"] or [])):
            processes.setdefault(p.pid, p)
    total = 0
    for p in processes.values():
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--no-speech", action="store_true")
    parser.add_argument("--streams", type=int, default=1, help="streams sent at once, sharing one vidscope live")
    args = parser.parse_args()
    video = stream_file()
    ports, data = [free_udp_port() for _ in range(args.streams)], Path(tempfile.mkdtemp(prefix="vidscope-live-"))
    names = [f"cam{i}" for i in range(args.streams)]
    status_paths = [data / "live" / f"{name}.json" for name in names]
    command = [sys.executable, "-m", "pipelines.cli", "live", *(f"udp://127.0.0.1:{p}" for p in ports),
               *(x for name in names for x in ("--name", name)), "--data", str(data),
               "--json", *(["--no-speech"] if args.no_speech else [])]
    live = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc = psutil.Process(live.pid)
    while not all(p.exists() for p in status_paths):
        if live.poll() is not None:
            print("vidscope live exited early", file=sys.stderr)
            return 1
        time.sleep(0.2)
    seconds = args.minutes * 60
    sent_at_ns = time.time_ns()
    senders = [subprocess.Popen([synth.find_ffmpeg(), "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(video),
                                 "-t", str(seconds), "-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"])
               for port in ports]
    sender = senders[0]
    seen: set[int] = set()
    latencies: list[float] = []
    lags: list[tuple[float, float]] = []
    peak_rss = 0
    memory: list[int] = []
    started = time.monotonic()
    db = None
    media_zero_ns = None
    while sender.poll() is None or time.monotonic() - started < seconds + 5:
        time.sleep(0.1)
        now_ns = time.time_ns()
        if db is None and (data / "vidscope.sqlite3").exists():
            db = sqlite3.connect(f"file:{data / 'vidscope.sqlite3'}?mode=ro", uri=True)
        if db is not None:
            if media_zero_ns is None:
                try:
                    media_zero_ns = round(json.loads(status_paths[0].read_text())["connection_start_seconds"] * 1e9) or None
                except (OSError, ValueError, KeyError):
                    pass
            rows = db.execute("select s.segment_id, s.end_ns from segments s join sources src using (source_id) "
                              "where src.name = ?", (names[0],)).fetchall() if media_zero_ns else []
            for segment_id, end_ns in rows:
                if segment_id not in seen:
                    seen.add(segment_id)
                    latencies.append((now_ns - (sent_at_ns + end_ns - media_zero_ns)) / 1e9)
        if int((time.monotonic() - started) * 10) % 20 == 0:
            try:
                worst = max(json.loads(p.read_text())["lag_seconds"] for p in status_paths)
                lags.append((time.monotonic() - started, worst))
            except (OSError, ValueError, KeyError):
                pass
            rss_now = tree_rss(proc)
            peak_rss = max(peak_rss, rss_now)
            memory.append(rss_now)
    finals = [json.loads(p.read_text()) for p in status_paths]
    for extra in senders:
        extra.kill()
    live.send_signal(signal.SIGINT)
    live.communicate(timeout=300)
    values = np.array(latencies[1:])  # the first segment waits for the stream to be probed
    quarter = max(1, len(lags) // 4)
    first_lag = float(np.mean([lag for _, lag in lags[:quarter]])) if lags else float("nan")
    last_lag = float(np.mean([lag for _, lag in lags[-quarter:]])) if lags else float("nan")
    speech = "off" if args.no_speech else "on"
    print(f"\n{args.streams} x 720p30 stream over UDP, {args.minutes:g} min, 2-s windows, speech {speech}, {len(seen)} segments")
    print(f"glass-to-searchable: p50 {np.percentile(values, 50):.2f} s, p95 {np.percentile(values, 95):.2f} s, "
          f"max {values.max():.2f} s   (targets: p50 <= 3.5 s, p95 <= 5 s)")
    print(f"reported lag (worst stream): {first_lag:.2f} s in the first quarter, {last_lag:.2f} s in the last "
          f"({'flat' if last_lag - first_lag < 1.0 else 'GROWING'})")
    print(f"dropped {sum(f['segments_dropped'] for f in finals)}, thinned {sum(f['segments_thinned'] for f in finals)}, "
          f"reconnects {sum(f['reconnects'] for f in finals)}")
    mq = max(1, len(memory) // 4)
    rss_first, rss_last = np.mean(memory[mq:2 * mq]) / 1e9, np.mean(memory[-mq:]) / 1e9  # after the first quarter's warm-up
    print(f"peak RSS, every vidscope and Ray process: {peak_rss / 1e9:.2f} GB; mean {rss_first:.2f} GB in the second "
          f"quarter, {rss_last:.2f} GB in the last ({'flat' if rss_last - rss_first < 0.15 else 'GROWING'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
