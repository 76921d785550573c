"""Two workers share one Redis: what one ingests, another finds, from a data folder of its own
(which only caches FAISS files, rebuilt from Redis on open)."""

import json
import os

import pytest

from pipelines.cli import main
from pipelines.demo.synth import Scene, Speech, build_video
from redis_fixture import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_url():
    if REDIS_SERVER is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server; make test does it)")
    server = RedisServer()
    server.start()
    yield server.url
    server.kill()


def test_an_ingest_into_redis_is_found_from_another_workers_folder(redis_url, tmp_path, capsys):
    video = tmp_path / "shared.mp4"
    build_video(video, (Scene("cat", 4.0), Scene("rocket", 4.0)), (Speech("the rocket is ready", 4.5),), width=320, height=240)
    capsys.readouterr()
    assert main(["ingest", str(video), "--data", str(tmp_path / "worker-a"), "--redis", redis_url, "--json", "--no-speech"]) == 0
    assert json.loads(capsys.readouterr().out)["segments"] == 4
    assert not (tmp_path / "worker-a" / "vidscope.sqlite3").exists()  # nothing went to SQLite
    assert main(["search", "a cat", "--data", str(tmp_path / "worker-b"), "--redis", redis_url, "--json"]) == 0
    best = json.loads(capsys.readouterr().out)[0]
    assert best["source"] == "shared.mp4" and best["end"] <= 4.0 + 1e-6
    assert main(["summary", "shared.mp4", "--data", str(tmp_path / "worker-b"), "--redis", redis_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chapters"]
    # --redis held for those commands only: the next command in this process (or a child it
    # starts) uses SQLite again unless it says --redis itself.
    assert "VIDSCOPE_REDIS" not in os.environ
    import ray

    ray.shutdown()
