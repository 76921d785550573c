"""A real live stream for tests: ffmpeg sends a looped clip over UDP (MPEG-TS, paced in real
time) while ``vidscope live`` reads it as a subprocess, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from redis_fixture import free_port

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def live_run(clip: Path, data: Path, *options: str, name: str = "cam") -> Iterator[subprocess.Popen]:
    """``vidscope live udp://... --name NAME --data DATA OPTIONS`` on ``clip`` looped, for the body
    of the ``with``; then SIGTERM, and the run must have ended cleanly (exit 0)."""
    port = free_port()
    sender = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy",
                               "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"])
    log = tempfile.TemporaryFile()  # a file, not a pipe: a long run's warnings cannot fill it and block the run
    live = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "live", f"udp://127.0.0.1:{port}", "--name", name,
                             "--data", str(data), *options],
                            cwd=REPO, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
                            stdout=subprocess.DEVNULL, stderr=log)

    def said() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-3000:]

    with log:
        try:
            yield live
        except BaseException as failed:  # what the run said is the first thing to read when a check fails
            stop(live, sender)
            failed.add_note(f"vidscope live exited {live.returncode}; its stderr ends:\n{said()}")
            raise
        stop(live, sender)
        assert live.returncode == 0, said()


def stop(live: subprocess.Popen, sender: subprocess.Popen) -> None:
    live.send_signal(signal.SIGTERM)
    try:
        live.wait(120)
    except subprocess.TimeoutExpired:
        live.kill()
        live.wait()
    sender.kill()
    sender.wait()
