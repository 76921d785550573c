"""`--ray-address` joins a running Ray cluster instead of starting one: a head node started with
`ray start --head` (a separate process tree, 2 CPUs, fewer than one set of stages asks for, so the
reservations must shrink to fit), then `vidscope ingest --ray-address auto` in another process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.demo.synth import Scene, Speech, build_video

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    head = subprocess.Popen([RAY, "start", "--head", "--block", f"--port={free_port()}", "--num-cpus=2",
                             "--include-dashboard=false", "--object-store-memory=200000000", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    probe = "import ray; ray.init(address='auto'); ray.shutdown()"
    deadline = time.monotonic() + 90
    while True:  # ready when a client can join it
        try:
            if subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30).returncode == 0:
                break
        except subprocess.TimeoutExpired:
            pass
        assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not come up"
        time.sleep(1)
    yield head
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)


def test_ingest_joins_an_existing_cluster(ray_head, tmp_path):
    video = tmp_path / "clip.mp4"
    build_video(video, (Scene("cat", 4.0), Scene("coffee", 4.0)), (Speech("hello there", 1.0),))
    data = tmp_path / "data"
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", str(video), "--data", str(data),
                          "--ray-address", "auto", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "reserving" in out.stderr  # 2 CPUs < one set of stages: reservations shrank instead of hanging
    report = json.loads(out.stdout)
    assert report["indexed"] == 1 and report["segments"] == 4
    found = subprocess.run([sys.executable, "-m", "pipelines.cli", "search", "a cat", "--data", str(data), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert json.loads(found.stdout)[0]["end"] <= 4.0 + 1e-6
