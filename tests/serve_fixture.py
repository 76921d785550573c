"""An indexed library and a running ``vidscope serve`` over it, shared by the API, fuzz and
browser tests: one real ingest (Ray, the offline models) of videos whose content is known, then
the app on uvicorn in a thread, on a free loopback port."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pipelines.demo.synth import Scene, Sound, Speech, build_video
from redis_fixture import free_port

# 24 s: four shots (cuts at 6, 12, 18 s), a phrase over the cat, cheering over the motorcycle.
SCENES = (Scene("cat", 6.0), Scene("coffee", 6.0), Scene("rocket", 6.0), Scene("motorcycle", 6.0))
SOUNDS = (Speech("please remember to buy fresh bread", 2.5), Sound("crowd", 19.0, 4.0))


@pytest.fixture(scope="session")
def served_data(tmp_path_factory) -> Path:
    from pipelines.cli import main

    media = tmp_path_factory.mktemp("served-media")
    build_video(media / "story.mp4", SCENES, SOUNDS, width=320, height=240)
    build_video(media / "quiet.mp4", (Scene("palace", 4.0),), (), width=320, height=240)
    data = tmp_path_factory.mktemp("served-data")
    assert main(["ingest", str(media), "--data", str(data), "--json"]) == 0
    import ray

    ray.shutdown()
    return data


@pytest.fixture(scope="session")
def library(served_data):
    from pipelines.serve.library import Library

    lib = Library(served_data)
    yield lib
    lib.close()


class RunningServer:
    """uvicorn serving ``app`` on a thread; ``url`` is its base URL."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def server(served_data, library):
    from pipelines.serve.app import ServeConfig, create_app

    running = RunningServer(create_app(ServeConfig(served_data), library=library))
    yield running
    running.stop()
