"""An index split by source into four shards answers every query exactly as the whole index:
the same moments, spans and scores (``indexers.shards``: two rounds, candidates then moments).
Each shard holds only its sources' vectors."""

from __future__ import annotations

import numpy as np
import pytest

from indexers.index import SegmentIndex
from indexers.shards import Shard, merge_moments, search_shards, shard_of
from indexers.store import SourceInfo
from operators.records import FusedRecord, Span, segment_id
from pipelines.serve.library import Library

SOURCES, PER_SOURCE, SEGMENT_NS = 40, 50, 2_000_000_000
WORDS = "cat dog crowd cheering goal car street coffee music applause rain bird stadium kitchen".split()
QUERIES = ["a cat", "crowd cheering", "someone says goal", "a car on a street", "a cup of coffee",
           "music playing", "people clapping", "rain falling", "a dog barking", "birds in a stadium"]


def walk(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Unit vectors drifting along a source: neighbours alike, as consecutive moments of a video are."""
    x = np.cumsum(rng.standard_normal((n, dim), dtype=np.float32), axis=0) + 4 * rng.standard_normal(dim).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    rng = np.random.default_rng(7)
    data = tmp_path_factory.mktemp("sharded")
    with SegmentIndex(data) as index:
        for s in range(SOURCES):
            source_id = f"src{s:03d}"
            index.add_source(SourceInfo(source_id, f"/videos/{source_id}.mp4", f"{source_id}.mp4", has_video=True,
                                        has_audio=True, status="done"))
            spaces = {name: walk(rng, PER_SOURCE, 384) for name in ("visual", "audio", "speech", "all")}
            images = walk(rng, PER_SOURCE, 1280)
            records = []
            for i in range(PER_SOURCE):
                words = [str(w) for w in rng.choice(WORDS, 3)]
                records.append(FusedRecord(
                    segment_id=segment_id(source_id, i * SEGMENT_NS), source_id=source_id,
                    span=Span(i * SEGMENT_NS, (i + 1) * SEGMENT_NS), description=" ".join(words),
                    labels=tuple((w, 0.3) for w in words), events=(("Speech", 0.4),), transcript=f"someone says {words[0]}",
                    loudness_db=-23.0, embeddings={k: v[i] for k, v in spaces.items()}, visual_features=images[i]))
            index.upsert(records)
    return data


def test_four_shards_answer_as_the_whole_index(folder):
    whole = Library(folder)
    shards = [Library(folder, shard=Shard(k, 4)) for k in range(4)]
    front = Library(folder, shard=Shard(0, 0))  # embeds and matches words, holds no vectors
    try:
        held = [sum(s.index.vectors.counts().values()) for s in shards]
        assert sum(held) == sum(whole.index.vectors.counts().values())
        assert all(0 < h < sum(held) / 2 for h in held), held  # each holds its part only
        assert {shard_of(f"src{s:03d}", 4) for s in range(SOURCES)} == {0, 1, 2, 3}


        def ask(method, *args):  # what the Ray Serve handles do, in this process
            return [getattr(s, method)(*args) for s in shards]

        for top_k in (5, 20):
            for query in QUERIES:
                expected = whole.search(query, top_k=top_k)
                got = search_shards(front.searcher, ask, query, top_k)
                assert len(expected) == top_k
                assert [(m["source_id"], m["start"], m["end"], m["score"]) for m in got] == \
                       [(m["source_id"], m["start"], m["end"], m["score"]) for m in expected], (query, top_k)
    finally:
        for lib in [whole, front, *shards]:
            lib.close()


def test_the_api_in_front_of_shards_holds_no_vectors(folder):
    front = Library(folder, shard=Shard(0, 0), ask_shards=lambda method, *args: [])
    whole = Library(folder)
    try:
        assert sum(front.index.vectors.counts().values()) == 0
        assert front.search("a cat", top_k=5) == []  # asked the shards (none here)
        # A search within one source is scored from the store's vectors, exactly, without the shards.
        within = front.search("a cat", top_k=3, source_id="src001")
        assert within and within == whole.search("a cat", top_k=3, source_id="src001")
    finally:
        front.close()
        whole.close()


def test_merging_orders_as_the_whole_index_does():
    a = [{"score": 0.9, "source_id": "b", "start": 4.0}, {"score": 0.5, "source_id": "b", "start": 0.0}]
    b = [{"score": 0.9, "source_id": "a", "start": 8.0}, {"score": 0.7, "source_id": "c", "start": 2.0}]
    assert [(m["source_id"], m["start"]) for m in merge_moments([a, b], 3)] == [("a", 8.0), ("b", 4.0), ("c", 2.0)]
    with pytest.raises(ValueError):
        Shard(4, 4)


def test_a_shard_without_sources_answers_nothing(folder):
    used = {shard_of(f"src{s:03d}", 100) for s in range(SOURCES)}
    empty = Library(folder, shard=Shard(min(set(range(100)) - used), 100))
    try:
        assert sum(empty.index.vectors.counts().values()) == 0
        queries, _, n = empty.searcher.plan("a cat", 5)
        assert all(pairs == [] for pairs in empty.candidates(queries, n).values())
    finally:
        empty.close()


def test_a_shard_starts_again_from_its_own_snapshot_and_replays_what_the_store_gained(tmp_path, caplog):
    rng = np.random.default_rng(11)

    def add(index, s):
        source_id = f"src{s:03d}"
        index.add_source(SourceInfo(source_id, f"/videos/{source_id}.mp4", f"{source_id}.mp4", has_video=True,
                                    has_audio=False, status="done"))
        vectors = walk(rng, 20, 384)
        index.upsert([FusedRecord(segment_id=segment_id(source_id, i * SEGMENT_NS), source_id=source_id,
                                  span=Span(i * SEGMENT_NS, (i + 1) * SEGMENT_NS), description="a cat", labels=(),
                                  events=(), transcript="", loudness_db=-23.0, embeddings={"visual": vectors[i]},
                                  visual_features=None)
                      for i in range(20)])
        return source_id

    with SegmentIndex(tmp_path) as index:
        for s in range(8):
            add(index, s)
    mine = [s for s in range(8) if shard_of(f"src{s:03d}", 2) == 0]
    with SegmentIndex(tmp_path, read_only=True, shard=Shard(0, 2)) as first:
        assert first.vectors.counts() == {"visual": 20 * len(mine)}
    saved = tmp_path / "index" / "shards" / "0-of-2" / "manifest.json"
    assert saved.exists()

    with SegmentIndex(tmp_path) as index:  # an ingest beside: one source more for shard 0, one for shard 1
        extra = {shard_of(f"src{s:03d}", 2): s for s in range(8, 40)}
        for s in (extra[0], extra[1]):
            add(index, s)
    caplog.clear()
    with caplog.at_level("INFO", logger="indexers.vectors"):
        with SegmentIndex(tmp_path, read_only=True, shard=Shard(0, 2)) as again:
            assert again.vectors.counts() == {"visual": 20 * (len(mine) + 1)}  # its new source, not shard 1's
            found = again.vectors.search("visual", walk(rng, 1, 384), 400)[1][0].tolist()
            held = {source_id for source_id, _, _ in again.store.get_spans(found).values()}
    assert "replayed to" in caplog.text and "building" not in caplog.text, caplog.text
    assert held == {f"src{s:03d}" for s in (*mine, extra[0])}
