"""`--ray-address` joins a running Ray cluster instead of starting one: a head node started with
`ray start --head` (a separate process tree, 2 CPUs, fewer than one set of stages asks for, so the
reservations must shrink to fit), then `vidscope ingest --ray-address auto` in another process."""

import json
import subprocess
import sys

import pytest

from pipelines.demo.synth import Scene, Speech, build_video

pytestmark = pytest.mark.slow


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
