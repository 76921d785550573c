"""A Ray head started as `ray start --head` would be on a real machine: a process tree of its own
(2 CPUs), which commands then join with ``--ray-address auto``. A pytest plugin."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
