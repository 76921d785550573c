"""A real ``redis-server`` for tests, on a free loopback port (ready in ~55 ms, shared/FACTS.md).

Without persistence by default (``--save '' --appendonly no``): a restart empties it. With
``data_dir`` it keeps an append-only file there, fsynced on every write, so a restart (even a
``kill -9``) keeps every write the server acknowledged. The fixtures below are shared by every
test module (tests/conftest.py loads this one as a plugin): ``redis_server`` one per module,
``own_server`` and ``aof_server`` private ones for cases that kill them.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")
INSTALL_HINT = "redis-server is not installed (apt-get install -y redis-server)"
needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason=INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process; ``start`` again after ``kill`` to restart it on the same port."""

    def __init__(self, *, data_dir: Path | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError(INSTALL_HINT)
        self.port = free_port()
        self.data_dir = data_dir
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 5.0) -> None:
        args = [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        if self.data_dir is None:
            args += ["--appendonly", "no"]
        else:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.data_dir)]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):  # not listening yet, or still loading the AOF
                    pass
                if self._process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} exited with {self._process.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} not ready after {timeout_s} s")
                time.sleep(0.005)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown save, no goodbye to clients."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        self._process = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)


@pytest.fixture(scope="module")
def redis_server():
    if REDIS_SERVER is None:
        pytest.fail(INSTALL_HINT)  # make test installs it: missing means the set-up is broken, not a skip
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def own_server():
    """A private server without persistence, for cases that kill it."""
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def aof_server(tmp_path):
    """A private server that keeps an fsynced append-only file in tmp_path: restarts keep the data."""
    server = RedisServer(data_dir=tmp_path)
    server.start()
    yield server
    server.kill()


def fresh_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"
