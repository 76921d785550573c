"""A million segments: build, open, memory, disk, query latency in-process and served, and the
recall of the index kind ``auto`` picks at that size against exact search.

The vectors are not random: they are derived from the real segments of a real ingest (the demo
video by default, ``--real DIR`` for another data folder) so that the neighbour structure is a
video archive's: every synthetic shot mixes two real segments' vectors, and its consecutive
segments drift around that mix with noise, in all five spaces (visual, audio, speech, all:
MiniLM 384-d; image: EfficientNet 1280-d). Planted answers: ``PLANTED`` phrases written here,
each the transcript of one segment whose speech and description vectors are the phrase's own
MiniLM embedding plus noise; a search for the phrase should return that segment first.

Measured (targets of issue 12, on these 2 cores): query p95 <= 50 ms served, recall@10 >= 0.95,
RSS <= 4 GB, open <= 10 s. Recall@10 is per space, the index's top 10 against an exact scan of
the store's float32 vectors (streamed, so the bench never holds a space in memory), for the
queries below and ``--recall-queries`` vectors of the index itself, and also as 10@50: the share
of the exact top 10 among the index's top 50, the candidates a search rescores exactly (so the
share of the true best ten a search can return), and as a search uses the index: those 50
rescored exactly, their best 10 counted as found where they score at least the exact tenth
(ann-benchmarks' tie-aware recall, 1e-3); ``nprobe`` is swept to show the trade. Rerunnable: ``--keep DIR`` keeps the built folder, a second run only measures.

    python bench/scale.py [--segments 1000000] [--keep DIR] [--queries 200] [--real DATA]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from indexers.index import INDEX_DIR, SegmentIndex  # noqa: E402
from indexers.search import SearchConfig  # noqa: E402
from indexers.store import IMAGE_SPACE, TEXT_SPACES, SourceInfo  # noqa: E402
from operators.records import FusedRecord, Span, segment_id  # noqa: E402
from query import wait_ready  # noqa: E402

SEGMENT_NS = 2_000_000_000
PER_SOURCE = 500
SHOT_SEGMENTS = 8
CANDIDATES = SearchConfig().candidates_per_space
"""What a search takes from each space and rescores exactly from float32 (50)."""
SPACES = (*TEXT_SPACES, IMAGE_SPACE)
QUERIES = ["a cat", "crowd cheering", "someone says goal", "a car on a street", "a cup of coffee",
           "music playing", "people clapping", "rain falling", "a dog barking", "birds singing",
           "a rocket launch", "a motorcycle engine", "a palace at night", "flowers in a garden"]
"""The latency queries."""
DEV = QUERIES + ["a man giving a speech", "waves on a beach", "traffic at night", "a baby laughing",
                 "an airplane taking off", "people dancing at a party", "thunder and lightning", "a woman singing",
                 "a football match", "someone cooking in a kitchen", "a train passing", "a busy market",
                 "a horse running", "applause after a speech", "a city skyline", "wind blowing through trees",
                 "a phone ringing", "someone typing on a keyboard", "a bus stopping", "fish in an aquarium"]
"""The text queries ``ivf_nprobe`` was chosen on (``--split dev``)."""
TEST = ["a dog catching a frisbee", "snow on mountains", "a crowded subway station", "someone playing the piano",
        "a boat on a lake", "a firework display", "children playing in a park", "a police siren",
        "a man running on a track", "a glass breaking", "a tennis match", "people eating at a restaurant",
        "a storm at sea", "a bicycle race", "a cow in a field", "a helicopter flying", "a wedding ceremony",
        "an empty parking lot", "a door slamming", "a lecture in a classroom"]
"""Text queries no setting was chosen on (``--split test``, the default): the README's recall figures are theirs."""
PLANTED = ["the lighthouse keeper lit the lamp at dusk", "a red kite above the harbour wall",
           "the choir sang in the flooded cathedral", "two goats climbing a steep cliff",
           "the baker pulled bread from a wood oven", "a tram crossing the old stone bridge",
           "fireworks reflected in the river", "a chess player knocks over the king",
           "snow falling on a quiet railway platform", "the referee shows a red card",
           "a violinist tuning before the concert", "children racing paper boats in a gutter",
           "a heron catching a fish at the weir", "the auctioneer brings down the hammer",
           "a hot air balloon over the vineyards", "sparks fly from the blacksmith's anvil",
           "an old man feeding pigeons in the square", "the ferry horn sounds in the fog",
           "a surfer rides a huge wave", "the crowd falls silent for the anthem"]
VIDSCOPE = str(Path(sys.executable).with_name("vidscope"))


def real_vectors(data: Path) -> dict[str, np.ndarray]:
    """Every space's vectors of a real data folder, float32 [n, dim]."""
    with SegmentIndex(data, read_only=True) as index:
        out = {}
        for space in SPACES:
            batches = [v for _, v in index.store.iter_vectors(space)]
            if not batches:
                raise SystemExit(f"{data} has no {space} vectors: ingest a video with pictures and sound first")
            out[space] = np.concatenate(batches)
    return out


def ensure_real(args) -> Path:
    if args.real:
        return Path(args.real)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="vidscope-scale-")) / "real"
    if not (folder / "vidscope.sqlite3").exists():
        print("ingesting the demo video for real segments to derive from ...", flush=True)
        subprocess.run([VIDSCOPE, "demo", "--data", str(folder)], check=True, stdout=subprocess.DEVNULL)
    return folder


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def derived_source(rng: np.random.Generator, real: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """``n`` segments of one synthetic source: shots mixing two real segments, drifting with noise."""
    out = {}
    shots = -(-n // SHOT_SEGMENTS)
    a, b = rng.integers(0, 1 << 30, shots), rng.integers(0, 1 << 30, shots)
    w = rng.uniform(0.2, 0.8, shots).astype(np.float32)[:, None]
    for space, base in real.items():  # spaces hold different counts (speech: only segments with words)
        dim = base.shape[1]
        a, b = a % len(base), b % len(base)
        mix = np.repeat(w * base[a] + (1 - w) * base[b], SHOT_SEGMENTS, axis=0)[:n]
        drift = np.cumsum(rng.standard_normal((n, dim), dtype=np.float32), axis=0) * (0.05 / np.sqrt(dim))
        noise = rng.standard_normal((n, dim), dtype=np.float32) * (0.6 / np.sqrt(dim))
        out[space] = unit(mix + drift + noise)
    return out


def neighbour_structure(data: Path, real: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Per space, the median cosine of consecutive segments: of the real folder (in time order,
    across shots too) and of one derived source within its shots. Where the derived value is far
    below the real one, noise decides a query's neighbours more than it would in an archive."""
    out = {}
    derived = derived_source(np.random.default_rng(0), real, PER_SOURCE)
    with SegmentIndex(data, read_only=True) as index:
        for space in SPACES:
            ids, vectors = (np.concatenate(x) for x in zip(*index.store.iter_vectors(space)))
            spans = index.store.get_spans(ids.tolist())
            order = sorted(range(len(ids)), key=lambda k: (spans[int(ids[k])][0], spans[int(ids[k])][1]))
            v = vectors[order]
            d = derived[space]
            within = [i for i in range(len(d) - 1) if (i + 1) % SHOT_SEGMENTS]
            out[space] = (float(np.median((v[1:] * v[:-1]).sum(1))), float(np.median((d[1:] * d[:-1]).sum(1)[within])))
    return out


def build(folder: Path, n: int, real: dict[str, np.ndarray], embed) -> dict:
    """Write ``n`` derived segments (and the planted ones) through the index, then save: what an
    ingest of that archive would leave. Returns the planted answers and the seconds taken."""
    rng = np.random.default_rng(12)
    planted_vectors = embed(PLANTED)
    planted_at = sorted(rng.choice(n, len(PLANTED), replace=False).tolist())
    answers = {}
    started = time.perf_counter()
    with SegmentIndex(folder) as index:
        for first in range(0, n, PER_SOURCE):
            source_id = f"{first // PER_SOURCE:08x}"
            count = min(PER_SOURCE, n - first)
            index.add_source(SourceInfo(source_id, f"/archive/{source_id}.mp4", f"{source_id}.mp4", has_video=True,
                                        has_audio=True, status="done", duration_ns=count * SEGMENT_NS))
            spaces = derived_source(rng, real, count)
            records = []
            for i in range(count):
                start = i * SEGMENT_NS
                vectors = {space: spaces[space][i] for space in TEXT_SPACES}
                transcript = ""
                if planted_at and planted_at[0] == first + i:
                    planted_at.pop(0)
                    k = len(answers)
                    transcript = PLANTED[k]
                    near = unit(planted_vectors[k] + rng.standard_normal(384).astype(np.float32) * (0.3 / np.sqrt(384)))
                    vectors["speech"] = vectors["all"] = near
                    answers[PLANTED[k]] = (source_id, start)
                records.append(FusedRecord(segment_id=segment_id(source_id, start), source_id=source_id,
                                           span=Span(start, start + SEGMENT_NS), description="", labels=(),
                                           events=(), transcript=transcript, loudness_db=-23.0, embeddings=vectors,
                                           visual_features=spaces[IMAGE_SPACE][i]))
            index.upsert(records)
            if (first // PER_SOURCE) % 200 == 0:
                print(f"  written {first + count:,} segments ({time.perf_counter() - started:.0f} s)", flush=True)
        written_s = time.perf_counter() - started
    return {"answers": answers, "write_seconds": written_s, "build_seconds": time.perf_counter() - started}


MEASURE = r"""
import json, os, sys, time
import numpy as np, psutil
t0 = time.perf_counter()
from pipelines.query import open_searcher
queries, planted, repeats = json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
with open_searcher(sys.argv[1]) as searcher:
    opened = time.perf_counter() - t0
    kinds = searcher.index.vectors.kinds()
    rss_open = psutil.Process().memory_info().rss
    for q in queries:
        searcher.search(q, top_k=10)
    samples = []
    for i in range(repeats):
        t = time.perf_counter(); searcher.search(queries[i % len(queries)], top_k=10); samples.append(time.perf_counter() - t)
    hits = {}
    for phrase, (source_id, start_ns) in planted.items():
        found = searcher.search(phrase, top_k=10)
        hits[phrase] = next((r for r, m in enumerate(found, 1) if m.source_id == source_id and m.start_ns <= start_ns < m.end_ns), None)
print(json.dumps({"open_s": opened, "kinds": kinds, "rss_open": rss_open, "rss_peak": psutil.Process().memory_info().rss,
                  "samples": samples, "planted_rank": hits}))
"""


def fits(folder: Path) -> bool:
    """Whether the saved indexes have the layout the default config gives their size."""
    from indexers.vector_config import VectorIndexConfig

    manifest = json.loads((folder / INDEX_DIR / "manifest.json").read_text())
    config = VectorIndexConfig()
    for entry in manifest["spaces"].values():
        kind, nlist = config.layout(entry["count"])
        if kind != entry["kind"]:
            return False
        if kind == "ivf":
            import faiss

            if faiss.read_index(str(folder / INDEX_DIR / entry["file"]), faiss.IO_FLAG_MMAP).nlist != nlist:
                return False
    return True


def in_process(folder: Path, planted: dict, repeats: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(folder), json.dumps(QUERIES), json.dumps(planted),
                          str(repeats)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def served(folder: Path, repeats: int) -> dict:
    import httpx
    import psutil

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([VIDSCOPE, "serve", "--data", str(folder), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            ready = wait_ready(http, server)
            first = []  # queries never asked before: their candidates' rows may come from disk
            for q in TEST[:10]:
                t = time.perf_counter()
                http.get("/api/v1/search", params={"q": q, "top_k": 10}).raise_for_status()
                first.append(time.perf_counter() - t)
            for q in QUERIES:
                http.get("/api/v1/search", params={"q": q, "top_k": 10}).raise_for_status()
            samples = []
            for i in range(repeats):
                t = time.perf_counter()
                http.get("/api/v1/search", params={"q": QUERIES[i % len(QUERIES)], "top_k": 10}).raise_for_status()
                samples.append(time.perf_counter() - t)
        return {"ready_s": ready, "samples": samples, "first": first, "rss": psutil.Process(server.pid).memory_info().rss}
    finally:
        server.terminate()
        server.wait(60)


def exact_top(store, space: str, queries: np.ndarray, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, ids)`` of each query's ``n`` best vectors by exact inner product, best first,
    streaming the store (the bench never holds a space in memory)."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for batch_ids, vectors in store.iter_vectors(space, batch_rows=65536):
        scores = queries @ vectors.T
        cat_s, cat_i = np.concatenate([best_s, scores], 1), np.concatenate([best_i, np.broadcast_to(batch_ids, scores.shape)], 1)
        keep = np.argpartition(-cat_s, min(n, cat_s.shape[1]) - 1, axis=1)[:, :n]
        best_s, best_i = np.take_along_axis(cat_s, keep, 1), np.take_along_axis(cat_i, keep, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def sample_vectors(store, space: str, count: int, total: int) -> np.ndarray:
    """``count`` of the space's own vectors, spread over it (the queries "more like this" asks)."""
    wanted = set(np.random.default_rng(3).choice(total, count, replace=False).tolist())
    picked, seen = [], 0
    for batch_ids, vectors in store.iter_vectors(space, batch_rows=65536):
        rows = [r for r in range(len(batch_ids)) if seen + r in wanted]
        picked.append(vectors[rows])
        seen += len(batch_ids)
    return np.concatenate(picked)


def recall(folder: Path, embed, nprobes: list[int], extra_queries: int, texts: list[str]) -> dict[str, dict[str, dict[int, float]]]:
    """Per space, query kind (``text``: the held-out phrases; ``vectors``: the space's own) and
    ``nprobe``: mean recall@10 of the saved index against an exact scan (ids in both top 10s).
    ``texts``: the text queries (``TEST``, or ``DEV`` to choose a setting on)."""
    import faiss

    manifest = json.loads((folder / INDEX_DIR / "manifest.json").read_text())
    text = np.asarray(embed(texts), np.float32)
    out: dict[str, dict[str, dict[int, float]]] = {}
    with SegmentIndex(folder, read_only=True) as index:
        for space in SPACES:
            entry = manifest["spaces"][space]
            saved = faiss.read_index(str(folder / INDEX_DIR / entry["file"]))
            kinds = {"vectors": sample_vectors(index.store, space, extra_queries, entry["count"])}
            if space in TEXT_SPACES:  # the image space is searched by pictures only
                kinds = {"text": text, **kinds}
            out[space] = {}
            for kind, queries in kinds.items():
                queries = np.ascontiguousarray(queries, np.float32)
                exact_scores, exact = exact_top(index.store, space, queries)
                tie_aware = kind + " rescored, tie-aware"
                out[space][kind], out[space][kind + f" 10@{CANDIDATES}"], out[space][tie_aware] = {}, {}, {}
                for nprobe in nprobes if isinstance(saved, faiss.IndexIVF) else [0]:
                    if nprobe:
                        saved.nprobe = nprobe
                    _, found = saved.search(queries, CANDIDATES)
                    for name, k in ((kind, 10), (kind + f" 10@{CANDIDATES}", CANDIDATES)):
                        out[space][name][nprobe] = float(np.mean([len(set(f[:k]) & set(e)) / 10 for f, e in
                                                                  zip(found.tolist(), exact.tolist())]))
                    out[space][tie_aware][nprobe] = rescored_recall(index.store, space, queries, found, exact_scores[:, 9])
            del saved
    return out


def rescored_recall(store, space: str, queries: np.ndarray, found: np.ndarray, tenth: np.ndarray) -> float:
    """What a search does with one space's candidates, scored as ann-benchmarks scores recall:
    the ``found`` candidates rescored from the store's float32 vectors, their best 10 kept, and
    the share of those scoring at least the exact tenth best minus 1e-3 (a tie within the
    rounding of a float32 dot product is no miss)."""
    shares = []
    for query, candidates, bar in zip(queries, found, tenth):
        _, vectors = store.get_vectors(space, candidates[candidates >= 0].tolist())
        best = np.sort(vectors @ query)[::-1][:10]
        shares.append(float(np.sum(best >= bar - 1e-3)) / 10)
    return float(np.mean(shares))


END_TO_END = r"""
import json, sys
import numpy as np
sys.path.insert(0, "bench")
from scale import exact_top
from indexers.store import TEXT_SPACES
from pipelines.query import open_searcher
texts, nprobes = json.loads(sys.argv[2]), json.loads(sys.argv[3])
with open_searcher(sys.argv[1]) as searcher:
    n = max(searcher.config.candidates_per_space, 40)
    queries = np.stack([searcher._queries(t)[TEXT_SPACES[0]] for t in texts])
    exact = {space: exact_top(searcher.index.store, space, queries, n) for space in TEXT_SPACES}
    approximate_per_space = searcher._per_space
    truth = []
    for q, text in enumerate(texts):  # the same search, each space's candidates from an exact scan
        searcher._per_space = lambda _queries, _n: {s: (exact[s][0][q], exact[s][1][q]) for s in TEXT_SPACES}
        truth.append(searcher.search(text, top_k=10))
    searcher._per_space = approximate_per_space
    out = {}
    for nprobe in nprobes:
        for space in searcher.index.vectors._spaces.values():
            if space.kind == "ivf":
                space.index.nprobe = nprobe
        same, within = [], []
        for text, best in zip(texts, truth):
            found = searcher.search(text, top_k=10)
            same.append(len({(m.source_id, m.start_ns) for m in found} & {(m.source_id, m.start_ns) for m in best}) / len(best))
            within.append(sum(m.score >= best[-1].score - 1e-3 for m in found) / len(best))
        out[nprobe] = (float(np.mean(same)), float(np.mean(within)))
print(json.dumps(out))
"""


def end_to_end(folder: Path, nprobes: list[int], texts: list[str]) -> dict[str, tuple[float, float]]:
    """Per ``nprobe``, the ``texts``' top 10 moments against the same search whose per-space
    candidates come from an exact scan: the share of the same moments (source and start), and the
    share scoring at least the exhaustive tenth's (ann-benchmarks' tie-aware recall, 1e-3)."""
    out = subprocess.run([sys.executable, "-c", END_TO_END, str(folder), json.dumps(texts), json.dumps(nprobes)],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--keep", default=None, help="build into (and reuse) this folder")
    parser.add_argument("--real", default=None, help="a data folder whose real segments the vectors derive from")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--split", choices=("test", "dev"), default="test",
                        help="the text queries recall is measured on: dev to choose ivf_nprobe, test to report")
    parser.add_argument("--recall-only", action="store_true", help="skip the latency and memory measurements")
    args = parser.parse_args()
    from operators.models.text import TextEncoder

    encoder = TextEncoder()
    encoder.setup()
    real_folder = ensure_real(args)
    real = real_vectors(real_folder)
    print("deriving from real segments: " + ", ".join(f"{space} {len(v)}" for space, v in real.items()))
    print("  median cosine of consecutive segments, real / derived within a shot: " + ", ".join(
        f"{space} {a:.3f} / {b:.3f}" for space, (a, b) in neighbour_structure(real_folder, real).items()))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vidscope-scale-"))
    folder = root / f"{args.segments}"
    facts = folder / "bench-build.json"
    if facts.exists():
        built = json.loads(facts.read_text())
        if not fits(folder):  # built with another index layout: index again, time it
            started = time.perf_counter()
            with SegmentIndex(folder):
                pass
            built["index_seconds"] = time.perf_counter() - started
            facts.write_text(json.dumps(built))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        built = build(folder, args.segments, real, encoder.embed)
        facts.write_text(json.dumps(built))
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{args.segments:,} segments: written in {built['write_seconds']:.0f} s, indexes built and saved "
          f"{built['build_seconds'] - built['write_seconds']:.0f} s later"
          + (f" (built again for this layout in {built['index_seconds']:.0f} s)" if "index_seconds" in built else "")
          + f"; {disk / 2**30:.2f} GiB on disk "
          f"(FAISS {sum(p.stat().st_size for p in (folder / INDEX_DIR).glob('*.faiss')) / 2**30:.2f} GiB)")
    if not args.recall_only:
        m = in_process(folder, built["answers"], args.queries)
        p50, p95 = np.percentile(np.array(m["samples"]) * 1e3, [50, 95])
        ranks = list(m["planted_rank"].values())
        print(f"  in-process: opened in {m['open_s']:.1f} s ({'/'.join(sorted(set(m['kinds'].values())))}), RSS "
              f"{m['rss_open'] / 2**30:.2f} GiB after open, {m['rss_peak'] / 2**30:.2f} GiB after queries; "
              f"search p50 {p50:.1f} ms p95 {p95:.1f} ms")
        print(f"  planted answers: {sum(r == 1 for r in ranks)}/{len(ranks)} first, "
              f"{sum(r is not None for r in ranks)}/{len(ranks)} in the top 10")
        s = served(folder, args.queries)
        p50, p95 = np.percentile(np.array(s["samples"]) * 1e3, [50, 95])
        print(f"  served: ready in {s['ready_s']:.1f} s, RSS {s['rss'] / 2**30:.2f} GiB; GET /api/v1/search "
              f"p50 {p50:.1f} ms p95 {p95:.1f} ms; the first time of {len(s['first'])} new queries: median "
              f"{np.median(s['first']) * 1e3:.0f} ms, max {max(s['first']) * 1e3:.0f} ms")
    texts = TEST if args.split == "test" else DEV
    r = recall(folder, encoder.embed, args.nprobe, args.recall_queries, texts)
    print(f"  recall@10 of each space's index against an exact scan ({len(texts)} {args.split} phrases; "
          f"{args.recall_queries} of the space's own vectors)")
    for space, by_kind in r.items():
        for kind, by_nprobe in by_kind.items():
            print(f"    {space:7s} {kind:14s}" + "  ".join((f"nprobe {k}: " if k else "") + f"{v:.3f}"
                                                     for k, v in by_nprobe.items()))
    e = end_to_end(folder, args.nprobe, texts)
    print(f"  the search's top 10 moments against the same search over exact candidates ({args.split} phrases): "
          "same moments / scoring at least the exhaustive tenth")
    print("    " + "  ".join(f"nprobe {k}: {a:.3f} / {b:.3f}" for k, (a, b) in e.items()))
    if os.environ.get("BENCH_JSON"):
        print(json.dumps({"built": {k: v for k, v in built.items() if k != "answers"}, "recall": r, "end_to_end": e}))


if __name__ == "__main__":
    main()
