"""``vidscope serve --ray-address``: the API as a Ray Serve deployment on a running cluster,
with two replicas, and again (the same cluster, another port) with the vectors in two shards
searched scatter-gather, answers exactly what the in-process server answers, and stops on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from redis_fixture import free_port

pytestmark = pytest.mark.slow

STATUS = """
import json, ray
from ray import serve
ray.init(address="auto", logging_level="ERROR")
app = serve.status().applications["vidscope"]
print(json.dumps({name: d.replica_states for name, d in app.deployments.items()}))
"""
QUERIES = ("a rocket", "people cheering", "fresh bread", "a cup of coffee")


def get(url: str, *, timeout_s: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


@contextlib.contextmanager
def served_on_ray(data, log, *options):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--data", str(data),
                             "--ray-address", "auto", "--port", str(port), *options],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                get(f"{base}/readyz")  # 503 (an HTTPError) until a replica has its index open
                break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        states = json.loads(subprocess.run([sys.executable, "-c", STATUS], capture_output=True, text=True,
                                           timeout=60, check=True).stdout.strip().splitlines()[-1])
        yield base, states
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]


def same_answers(base: str, library) -> None:
    for query in QUERIES:
        served = get(f"{base}/api/v1/search?q={urllib.request.quote(query)}&top_k=5")["results"]
        local = library.search(query, top_k=5)
        assert served and served == local, query


def test_the_api_on_ray_serve_answers_as_the_process_does_and_again_sharded_on_another_port(
        ray_head, served_data, library, tmp_path):
    with served_on_ray(served_data, tmp_path / "serve.log", "--replicas", "2") as (base, states):
        assert states == {"api": {"RUNNING": 2}}
        same_answers(base, library)
        assert get(f"{base}/api/v1/sources")["sources"]
    # The same cluster, served again on another port (bench/shards.py hung here: Ray Serve kept the
    # first run's port and ignored the new one; the server now leaves no Serve instance behind).
    with served_on_ray(served_data, tmp_path / "serve2.log", "--shards", "2") as (base, states):
        assert states == {"api": {"RUNNING": 1}, "shard-0": {"RUNNING": 1}, "shard-1": {"RUNNING": 1}}
        same_answers(base, library)
