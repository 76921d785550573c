"""Sharded search on Ray Serve against one unsharded index: the same answers, and what the two
rounds to every shard cost.

On one synthetic folder (bench/query.py's: random vectors in all five spaces, ``--segments``
of them), with a Ray head started here (``ray start --head``), three servers in turn:

- ``vidscope serve`` in one process (uvicorn), the baseline;
- ``vidscope serve --ray-address auto`` (one replica on Ray Serve: the proxy's cost alone);
- ``vidscope serve --ray-address auto --shards N`` (the vectors split by source over N shard
  deployments, searched in two rounds and merged).

Each gets the same ``--queries`` requests; p50/p95 are printed with their ratio to the
baseline. Past 20,000 vectors the indexes are approximate (IVF), and a shard's lists, trained
on a quarter of the vectors, find other candidates than the whole index's lists do, so answers are
compared with an exhaustive search (flat indexes over the same folder, in this process): the
share of its top 10 moments (source and start) each server returns, the share scoring at least
its tenth (within 1e-3: random vectors tie everywhere), and how many answers equal the
one-process server's exactly.

    python bench/shards.py [--segments 100000] [--shards 4] [--queries 200] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import QUERIES, build, free_port, wait_ready  # noqa: E402

VIDSCOPE = str(Path(sys.executable).with_name("vidscope"))
RAY = str(Path(sys.executable).with_name("ray"))


def serve(folder: Path, *options: str):
    import httpx

    port = free_port()
    proc = subprocess.Popen([VIDSCOPE, "serve", "--data", str(folder), "--port", str(port), *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    return proc, http, wait_ready(http, proc, timeout_s=900)


def measure(http, repeats: int) -> tuple[list[float], dict[str, list]]:
    answers = {}
    for q in QUERIES:  # warm-up, and the answers compared
        answers[q] = http.get("/api/v1/search", params={"q": q, "top_k": 10}).raise_for_status().json()["results"]
    samples = []
    for i in range(repeats):
        t = time.perf_counter()
        http.get("/api/v1/search", params={"q": QUERIES[i % len(QUERIES)], "top_k": 10}).raise_for_status()
        samples.append(time.perf_counter() - t)
    return samples, answers


def moments(results: list[dict]) -> set[tuple[str, float]]:
    return {(m["source_id"], m["start"]) for m in results}


def exhaustive(folder: Path) -> dict[str, list[dict]]:
    """Each query's top 10 moments over flat (exact) indexes of the folder, built in memory."""
    from indexers.index import SegmentIndex
    from indexers.search import Searcher
    from indexers.vector_config import VectorIndexConfig
    from operators.models.text import TextEncoder

    encoder = TextEncoder()
    encoder.setup()
    with SegmentIndex(folder, read_only=True, config=VectorIndexConfig(kind="flat")) as index:
        searcher = Searcher(index, encoder.embed)
        return {q: [m.to_json() for m in searcher.search(q, top_k=10)] for q in QUERIES}


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--keep", default=None)
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vidscope-shards-"))
    folder = root / f"{args.segments}"
    if not (folder / "index" / "manifest.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"building {args.segments:,} segments: {build(folder, args.segments):.0f} s", flush=True)
    head = subprocess.Popen([RAY, "start", "--head", "--block", f"--port={free_port()}", "--num-cpus=4",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(8)
        runs = {}
        for label, options in (("one process (uvicorn)", ()), ("Ray Serve, 1 replica", ("--ray-address", "auto")),
                               (f"Ray Serve, {args.shards} shards", ("--ray-address", "auto", "--shards", str(args.shards)))):
            proc, http, ready_s = serve(folder, *options)
            try:
                runs[label] = (*measure(http, args.queries), ready_s)
            finally:
                http.close()
                stop(proc)
        base_samples, base_answers, _ = runs["one process (uvicorn)"]
        base_p50 = float(np.percentile(base_samples, 50))
        truth = exhaustive(folder)
        print(f"{args.segments:,} segments, {len(QUERIES)} queries compared, {args.queries} timed, top 10:")
        for label, (samples, answers, ready_s) in runs.items():
            p50, p95 = np.percentile(np.array(samples) * 1e3, [50, 95])
            same = sum(answers[q] == base_answers[q] for q in QUERIES)
            found = np.mean([len(moments(answers[q]) & moments(truth[q])) / len(truth[q]) for q in QUERIES])
            # ann-benchmarks' tie-aware recall: random vectors tie within 1e-3 all over
            within = np.mean([sum(m["score"] >= truth[q][-1]["score"] - 1e-3 for m in answers[q]) / len(truth[q])
                              for q in QUERIES])
            print(f"  {label:24s} ready in {ready_s:5.1f} s  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
                  f"p50 x{p50 / 1e3 / base_p50:.2f} of one process  exhaustive top 10: same moments {found:.3f}, "
                  f"scoring at least its tenth {within:.3f}  equal to one process: {same}/{len(QUERIES)}")
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(60)


if __name__ == "__main__":
    main()
