"""A Ray cluster of three nodes on this machine (a head and two workers, ``ray.cluster_utils``),
no disk shared but the driver's: local files are decoded on the driver's node, an S3 prefix
(a real S3-protocol server on loopback) and an HTTP URL wherever there is room, and the encoder
pools spread over the nodes. Then a worker node is removed in the middle of an ingest: the run
completes, and every segment is indexed exactly once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from http_range import serve_folder
from indexers.index import SegmentIndex
from pipelines.demo.synth import Scene, Speech, build_video
from s3_fixture import CREDENTIALS

pytestmark = pytest.mark.slow
WINDOW_S = 2.0


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args=dict(num_cpus=2, object_store_memory=300 * 2**20,
                                                              include_dashboard=False))
    workers = [nodes.add_node(num_cpus=5, object_store_memory=200 * 2**20) for _ in range(2)]
    nodes.wait_for_nodes()
    yield nodes, workers
    nodes.shutdown()


def ingest(cluster_address: str, data: Path, inputs: list[str], stderr: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **CREDENTIALS, "RAY_ADDRESS": cluster_address}
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ingest", *inputs, "--data", str(data),
                             "--ray-address", cluster_address, "--json", "-v", *extra],
                            stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True, env=env)


def placement(stderr: Path, proc: subprocess.Popen, *, timeout_s: float = 240) -> dict[str, list[str]]:
    """The "workers by node" line the ingest logs once every worker is ready."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if match := re.search(r"workers by node: (\{.*\})", stderr.read_text()):
            return json.loads(match[1])
        assert proc.poll() is None, stderr.read_text()[-3000:]
        time.sleep(0.5)
    raise AssertionError("the workers were not ready in time:\n" + stderr.read_text()[-3000:])


def finish(proc: subprocess.Popen, stderr: Path) -> dict:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr.read_text()[-4000:]
    report, end = json.JSONDecoder().raw_decode(out)
    assert not out[end:].strip(), f"more than the report on stdout: {out[end:][:2000]}"
    return report


def assert_each_segment_once(data: Path, seconds_by_name: dict[str, float]) -> None:
    with SegmentIndex(data, read_only=True) as index:
        sources = {s.name: s for s in index.store.list_sources()}
        assert set(sources) == set(seconds_by_name)
        for name, seconds in seconds_by_name.items():
            starts = [s.start_ns for s in index.store.segments_of_source(sources[name].source_id)]
            assert starts == [round(i * WINDOW_S * 1e9) for i in range(round(seconds / WINDOW_S))], name
        expected = sum(round(s / WINDOW_S) for s in seconds_by_name.values())
        assert index.store.count_segments() == expected
        assert len(index) == expected  # one vector row each: nothing written twice


def test_sources_of_three_kinds_on_a_three_node_cluster(cluster, s3_store, tmp_path):
    nodes, workers = cluster
    endpoint, client = s3_store
    videos = tmp_path / "videos"
    web = tmp_path / "web"
    videos.mkdir(), web.mkdir()
    build_video(videos / "local.mp4", (Scene("cat", 4.0), Scene("coffee", 4.0)), (Speech("hello there", 1.0),))
    build_video(web / "web.mp4", (Scene("rocket", 4.0), Scene("palace", 4.0)), ())
    build_video(tmp_path / "bucket.mp4", (Scene("coffee", 4.0), Scene("cat", 4.0)), ())
    client.create_bucket(Bucket="cluster")
    client.upload_file(str(tmp_path / "bucket.mp4"), "cluster", "archive/bucket.mp4")
    data, log = tmp_path / "data", tmp_path / "ingest.log"
    with serve_folder(web) as (base, handler):
        proc = ingest(nodes.address, data, [str(videos), "s3://cluster/archive/", f"{base}/web.mp4"], log,
                      "--s3-endpoint", endpoint)
        where = placement(log, proc)
        report = finish(proc, log)
        assert handler.ranged >= 1
    assert report["indexed"] == 3 and report["segments"] == 12 and report["failed"] == []
    encoder_nodes = {n for name, ids in where.items() if name != "decode" for n in ids}
    assert len(encoder_nodes) >= 2, where  # the pools spread over the nodes
    assert report["nodes"] == where
    assert_each_segment_once(data, {"local.mp4": 8.0, "s3://cluster/archive/bucket.mp4": 8.0, f"{base}/web.mp4": 8.0})


def test_a_worker_node_lost_mid_ingest_costs_nothing(cluster, tmp_path):
    nodes, workers = cluster
    videos = tmp_path / "videos"
    videos.mkdir()
    scenes = ("cat", "coffee", "rocket", "palace")
    for n in range(3):
        build_video(videos / f"part{n}.mp4", tuple(Scene(scenes[(n + k) % 4], 12.0) for k in range(4)),
                    (Speech("the quick brown fox", 2.0),))
    data, log = tmp_path / "data", tmp_path / "ingest.log"
    # 4 frames a second: the frame encoders, not the decoders, set the pace, so every encoder
    # worker holds batches while the node goes (at 1 a second one sometimes held none).
    proc = ingest(nodes.address, data, [str(videos)], log, "--fps", "4")
    where = placement(log, proc)
    # Not the node the driver joined (all nodes share this machine's address, so that may be a
    # worker): losing it would end the driver, and the run, as losing a head does.
    candidates = [w for w in workers if w.node_id not in where["decode"]]
    by_node = {w.node_id: sum(w.node_id in ids for name, ids in where.items() if name != "decode") for w in candidates}
    victim = max(candidates, key=lambda w: by_node[w.node_id])
    assert by_node[victim.node_id] >= 1, where
    time.sleep(4)  # encoders busy with the first segments
    assert proc.poll() is None, "the ingest ended before the node could be lost"
    nodes.remove_node(victim, allow_graceful=False)
    report = finish(proc, log)
    text = log.read_text()
    assert "worker died" in text, text[-3000:]  # the node held work in flight when it went
    assert report["indexed"] == 3 and report["segments"] == 72 and report["failed"] == []
    assert_each_segment_once(data, {f"part{n}.mp4": 48.0 for n in range(3)})
    workers.remove(victim)
    workers.append(nodes.add_node(num_cpus=5, object_store_memory=200 * 2**20))  # as it was, for any later test
    nodes.wait_for_nodes()
