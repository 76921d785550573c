"""The ``MetadataStore`` contract, checked once against both stores (SQLite and Redis), the Redis
store's key layout, and FAISS indexes over it (what it must survive: tests/test_redis_failures.py).

Redis cases run a real ``redis-server`` (tests/redis_fixture.py), one per module, each store under
its own key prefix.
Records come from tests/test_index.py's builders, analysis from tests/test_analysis_store.py's.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path

import numpy as np
import pytest

from indexers.redis_store import RedisStore
from indexers.sqlite_store import SqliteStore
from indexers.store import SourceInfo, StoredSegment, VectorSpaceState, record_vectors
from indexers.vector_config import VectorIndexConfig
from indexers.vectors import VectorIndexes
from operators.records import Span, seconds_to_ns, segment_id
from redis_fixture import fresh_prefix, needs_redis
from test_analysis_store import MATCH, S, score, summary_json
from test_index import DIM, IMAGE_DIM, basis, random_records, random_unit, record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=needs_redis)])
def store(request, tmp_path):
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "db.sqlite3")
    else:
        made = RedisStore(request.getfixturevalue("redis_server").url, prefix=fresh_prefix())
    yield made
    made.close()


def summarize(changes) -> dict[str, tuple]:
    """space -> (revision, written ids, replaced ids, removed ids), ids sorted."""
    out = {}
    for c in changes:
        assert c.space not in out, f"two changes for {c.space}"
        assert c.written_vectors.shape == (len(c.written_ids), c.written_vectors.shape[1])
        out[c.space] = (c.revision, sorted(c.written_ids.tolist()), sorted(c.replaced_ids.tolist()),
                        sorted(c.removed_ids.tolist()))
    return out


def revisions(store, spaces) -> dict[str, int]:
    return {space: store.vector_space(space).revision for space in spaces}


def as_dict(ids: np.ndarray, vectors: np.ndarray) -> dict[int, bytes]:
    return {int(i): v.tobytes() for i, v in zip(ids, vectors)}


# -- the contract, on both stores --------------------------------------------------------------------


def test_the_same_records_twice_change_nothing_the_second_time(store):
    records = random_records(12)
    every = sorted(r.segment_id for r in records)
    spoken = sorted(r.segment_id for r in records if "speech" in r.embeddings)
    changes = store.upsert_segments(records)
    assert summarize(changes) == {"visual": (1, every, [], []), "audio": (1, every, [], []),
                                  "speech": (1, spoken, [], []), "all": (1, every, [], []),
                                  "image": (1, every, [], [])}
    image = next(c for c in changes if c.space == "image")
    assert image.written_vectors.dtype == np.float32 and image.written_vectors.shape == (12, IMAGE_DIM)
    assert as_dict(image.written_ids, image.written_vectors) == {
        r.segment_id: record_vectors(r)["image"].tobytes() for r in records}

    assert store.upsert_segments(records) == []
    assert store.upsert_segments(records[::-1]) == []  # order within a batch does not matter
    assert revisions(store, ["visual", "audio", "speech", "all", "image"]) == dict.fromkeys(
        ["visual", "audio", "speech", "all", "image"], 1)
    assert store.count_segments() == 12
    assert store.vector_space("speech") == VectorSpaceState(dim=DIM, revision=1, count=len(spoken))
    assert store.vector_space("clip") is None
    assert store.vector_revision("speech") == 1 and store.vector_revision("clip") is None


def test_a_record_replaces_everything_stored_for_its_segment(store):
    rng = np.random.default_rng(5)
    keep = record("a", 0, visual=random_unit(rng), audio=random_unit(rng), image=random_unit(rng, IMAGE_DIM))
    target = record("a", 2, visual=random_unit(rng), audio=random_unit(rng), image=random_unit(rng, IMAGE_DIM))
    tid = target.segment_id
    store.upsert_segments([keep, target])

    moved = random_unit(rng)  # a new visual vector, the same audio one, no image any more
    replacement = record("a", 2, visual=moved, audio=target.embeddings["audio"], description="replaced")
    changes = store.upsert_segments([replacement])
    assert summarize(changes) == {"visual": (2, [tid], [tid], []), "image": (2, [], [], [tid])}
    image = next(c for c in changes if c.space == "image")
    assert image.written_vectors.shape == (0, IMAGE_DIM)
    assert store.vector_space("image") == VectorSpaceState(dim=IMAGE_DIM, revision=2, count=1)
    assert store.vector_space("audio") == VectorSpaceState(dim=DIM, revision=1, count=2)
    ids, vectors = store.get_vectors("image", [tid, keep.segment_id])
    assert ids.tolist() == [keep.segment_id] and vectors.shape == (1, IMAGE_DIM)
    assert as_dict(*store.get_vectors("visual", [tid])) == {tid: record_vectors(replacement)["visual"].tobytes()}
    assert store.get_segments([tid])[tid].description == "replaced"

    # The same segment, now said to belong to another source at another time: it moves there.
    elsewhere = dataclasses.replace(replacement, source_id="b", span=Span(seconds_to_ns(10), seconds_to_ns(12)))
    assert store.upsert_segments([elsewhere]) == []  # same vectors: nothing for the indexes to do
    assert [s.segment_id for s in store.segments_of_source("a")] == [keep.segment_id]
    assert [(s.segment_id, s.start_ns) for s in store.segments_of_source("b")] == [(tid, seconds_to_ns(10))]
    assert store.count_segments() == 2

    # Within one batch the last record of an id wins.
    twice = [record("c", 0, visual=basis(1)), record("c", 0, visual=basis(2), description="second")]
    assert summarize(store.upsert_segments(twice)) == {"visual": (3, [twice[0].segment_id], [], [])}
    assert as_dict(*store.get_vectors("visual", [twice[0].segment_id])) == {twice[0].segment_id: basis(2).tobytes()}
    assert store.get_segments([twice[0].segment_id])[twice[0].segment_id].description == "second"


def test_deleting_segments_and_a_source_takes_all_they_hold_and_nothing_else(store):
    rng = np.random.default_rng(11)
    a = [record("a", t, visual=random_unit(rng), audio=random_unit(rng)) for t in (0, 2, 4)]
    b = [record("b", t, visual=random_unit(rng)) for t in (0, 2)]
    store.upsert_segments(a + b)
    store.upsert_source(SourceInfo("a", "/v/a.mp4", "a.mp4", has_video=True, has_audio=True, status="done"))
    store.upsert_source(SourceInfo("b", "/v/b.mp4", "b.mp4", has_video=True, has_audio=False, status="done"))
    store.put_analysis("a", cuts=[(2 * S, 0.9)], scores=[score("a", 0, 0.7), score("a", 2, 0.1)], summary=summary_json("A."))
    store.put_analysis("b", cuts=[], scores=[score("b", 0, 0.4)], summary=summary_json("B."))

    gone = a[1].segment_id  # one segment: its vectors and its highlight score go, the rest stays
    assert summarize(store.delete_segments([gone, 12345])) == {"visual": (2, [], [], [gone]), "audio": (2, [], [], [gone])}
    assert gone not in store.get_segments([gone]) and store.count_segments() == 4
    assert [s.segment_id for s in store.segments_of_source("a")] == [a[0].segment_id, a[2].segment_id]
    assert store.get_vectors("visual", [gone])[0].size == 0
    assert [h.segment_id for h in store.highlight_scores("a")] == [a[0].segment_id]
    assert store.delete_segments([]) == [] and store.delete_segments([gone]) == []  # nothing left to delete

    changes = summarize(store.delete_source("a"))  # everything of a: row, segments, vectors, analysis
    assert changes == {"visual": (3, [], [], sorted([a[0].segment_id, a[2].segment_id])),
                       "audio": (3, [], [], sorted([a[0].segment_id, a[2].segment_id]))}
    assert store.get_source("a") is None and store.segments_of_source("a") == []
    assert store.get_cuts("a") == [] and store.highlight_scores("a") == [] and store.get_summary("a") is None
    assert store.vector_space("audio").count == 0
    # b is untouched.
    assert [s.segment_id for s in store.segments_of_source("b")] == [r.segment_id for r in b]
    assert store.vector_space("visual").count == 2 and store.get_summary("b") == summary_json("B.")
    assert [h.segment_id for h in store.highlight_scores("b")] == [b[0].segment_id]


def test_a_path_with_several_versions_finds_the_newest_complete_one(store):
    store.upsert_source(SourceInfo("old", "/v/clip.mp4", "clip.mp4", has_video=True, has_audio=True, status="done",
                                   ingested_at_ns=1))
    store.upsert_source(SourceInfo("new", "/v/clip.mp4", "clip.mp4", has_video=True, has_audio=True, status="done",
                                   ingested_at_ns=3))
    store.upsert_source(SourceInfo("cut-short", "/v/clip.mp4", "clip.mp4", has_video=False, has_audio=False,
                                   ingested_at_ns=5))  # still "ingesting": a run that was cut short
    assert store.find_source("/v/clip.mp4").source_id == "new"


def test_every_class_score_is_kept_compactly_and_comes_back_within_quantisation(store):
    rng = np.random.default_rng(7)
    audio = rng.dirichlet(np.full(521, 0.05)).astype(np.float32)  # a few classes carry it, most near 0
    visual = rng.dirichlet(np.full(1000, 0.05)).astype(np.float32)
    kept = dataclasses.replace(record("cam", 0.0, visual=basis(1)), class_scores={"audio": audio, "visual": visual})
    bare = record("cam", 2.0, visual=basis(2))  # a segment without scores (no audio track, say)
    store.upsert_segments([kept, bare])
    got = store.get_segments([kept.segment_id, bare.segment_id])
    for name, truth in (("audio", audio), ("visual", visual)):
        back = got[kept.segment_id].class_scores(name)
        assert back.shape == truth.shape
        # square-root steps: within 0.002 below 0.25, within 0.004 anywhere; the best class stays the best
        assert np.abs(back - truth)[truth < 0.25].max() < 0.002 and np.abs(back - truth).max() < 0.004
        assert back.argmax() == truth.argmax()
        assert len(got[kept.segment_id].packed_scores[name]) < truth.size // 2  # under half a byte a class here
    assert got[bare.segment_id].class_scores("audio") is None and got[bare.segment_id].packed_scores == {}


def test_a_segments_thumbnail_is_kept_replaced_and_deleted_with_it(store):
    jpeg = b"\xff\xd8 a picture \xff\xd9"
    with_picture = dataclasses.replace(record("cam", 0.0, visual=basis(1)), thumbnail_jpeg=jpeg)
    other = dataclasses.replace(record("cam", 2.0, visual=basis(2)), thumbnail_jpeg=b"\xff\xd8 other")
    store.upsert_segments([with_picture, other])
    assert store.get_thumbnail(with_picture.segment_id) == jpeg
    store.upsert_segments([dataclasses.replace(with_picture, thumbnail_jpeg=None)])  # a record replaces all it had
    assert store.get_thumbnail(with_picture.segment_id) is None
    store.delete_segments([other.segment_id])
    assert store.get_thumbnail(other.segment_id) is None
    store.upsert_segments([with_picture])
    store.delete_source("cam")
    assert store.get_thumbnail(with_picture.segment_id) is None and store.get_thumbnail(12345) is None


def test_a_database_written_before_class_scores_opens_and_gains_them(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    SqliteStore(path).close()
    db = sqlite3.connect(path)  # what an earlier vidscope wrote: the same table without the two columns
    db.execute("ALTER TABLE segments DROP COLUMN visual_scores")
    db.execute("ALTER TABLE segments DROP COLUMN audio_scores")
    db.commit()
    db.close()
    store = SqliteStore(path)
    r = dataclasses.replace(record("cam", 0.0, visual=basis(1)), class_scores={"audio": np.full(521, 0.5, np.float32)})
    store.upsert_segments([r])
    assert store.get_segments([r.segment_id])[r.segment_id].class_scores("audio")[0] == pytest.approx(0.5, abs=0.004)
    store.close()


def test_a_vector_of_another_dimension_is_refused_and_nothing_is_written(store):
    store.upsert_segments([record("a", 0, visual=basis(1))])
    with pytest.raises(ValueError, match="visual vectors here are 384-d but this one is 512-d; was it made by"):
        store.upsert_segments([record("a", 2, visual=basis(1)), record("a", 4, visual=basis(1, 512))])
    with pytest.raises(ValueError, match="audio vectors here are 512-d but this one is 384-d"):  # a new space too
        store.upsert_segments([record("b", 0, audio=basis(1, 512)), record("b", 2, audio=basis(1))])
    with pytest.raises(ValueError, match="zero or not finite"):
        store.upsert_segments([record("a", 6, visual=np.zeros(DIM, np.float32))])
    assert store.count_segments() == 1
    assert store.vector_space("visual") == VectorSpaceState(dim=DIM, revision=1, count=1)
    assert store.vector_space("audio") is None and store.segments_of_source("b") == []


def test_sources_are_found_by_id_then_path_then_unambiguous_name(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = SourceInfo("id1", uri=str(tmp_path / "v" / "a.mp4"), name="a.mp4", has_video=True, has_audio=True,
                   ingested_at_ns=300)
    b = SourceInfo("id2", uri="/w/a.mp4", name="a.mp4", has_video=True, has_audio=False, status="failed",
                   error="moov atom not found", ingested_at_ns=100)
    cam = SourceInfo("/w/a.mp4", uri="rtmp://cam/1", name="cam", has_video=True, has_audio=True, duration_ns=None,
                     ingested_at_ns=200)  # its id is b's uri
    d = SourceInfo("id4", uri="/x/d.mp4", name="rtmp://cam/1", has_video=False, has_audio=True, duration_ns=7 * S,
                   status="done", ingested_at_ns=300)  # its name is cam's uri
    for source in (a, b, cam, d):
        store.upsert_source(source)

    assert store.find_source("id2") == b
    assert store.find_source("/w/a.mp4") == cam  # an id beats a uri
    assert store.find_source("rtmp://cam/1") == cam  # a uri beats a name
    assert store.find_source("v/a.mp4") == a  # a relative path, made absolute
    assert store.find_source("cam") == cam
    assert store.find_source("nothing") is None
    with pytest.raises(ValueError, match=r"2 sources are named 'a.mp4' \((id1, id2|id2, id1)\)"):
        store.find_source("a.mp4")
    assert [s.source_id for s in store.list_sources()] == ["id2", "/w/a.mp4", "id1", "id4"]  # time, then id
    assert store.get_source("id4") == d and store.get_source("nope") is None

    done = dataclasses.replace(b, status="done", error=None, duration_ns=5 * S)
    store.upsert_source(done)
    assert store.get_source("id2") == done and len(store.list_sources()) == 4


def test_segments_of_a_source_come_in_time_order_within_half_open_bounds(store):
    store.upsert_segments([record("a", t, all=basis(1)) for t in (8, 0, 4, 2, 6)] + [record("b", 1, all=basis(2))])

    def starts(**bounds) -> list[float]:
        return [s.start_ns / S for s in store.segments_of_source("a", **bounds)]

    assert starts() == [0, 2, 4, 6, 8]
    assert starts(start_ns=3 * S, end_ns=6 * S) == [2, 4]
    assert starts(start_ns=4 * S, end_ns=6 * S) == [4]  # [2, 4) ends at 4 and [6, 8) starts at 6: neither overlaps
    assert starts(start_ns=7 * S) == [6, 8]
    assert starts(end_ns=2 * S) == [0]
    assert starts(start_ns=10 * S) == [] and starts(end_ns=0) == []
    assert [s.source_id for s in store.segments_of_source("b", start_ns=0, end_ns=2 * S)] == ["b"]
    assert store.segments_of_source("nobody") == []
    assert store.segments_of_source("a")[0] == StoredSegment(
        segment_id("a", 0), "a", 0, 2 * S, "a at 0s", (("tabby cat", 0.5),), (("Meow", 0.25),), "", -20.0)
    wanted = [segment_id("a", 2 * S), segment_id("b", S), 12345]
    assert sorted(store.get_segments(wanted)) == sorted(wanted[:2])


def test_vectors_come_in_id_order_page_by_page(store):
    records = random_records(25, sources=5)
    store.upsert_segments(records)
    pages = list(itertools.islice(store.iter_vectors("visual", batch_rows=7), 10))  # a paging bug may never end
    assert [len(ids) for ids, _ in pages] == [7, 7, 7, 4]
    assert all(v.dtype == np.float32 and v.shape == (len(ids), DIM) for ids, v in pages)
    ids = np.concatenate([ids for ids, _ in pages])
    assert ids.tolist() == sorted(r.segment_id for r in records)
    paged = as_dict(ids, np.concatenate([v for _, v in pages]))
    assert paged == {r.segment_id: record_vectors(r)["visual"].tobytes() for r in records}
    assert as_dict(*store.get_vectors("visual", ids[::-1])) == paged

    assert [len(ids) for ids, _ in store.iter_vectors("speech", batch_rows=100)] == [9]
    assert list(store.iter_vectors("clip")) == []
    none_ids, none_vectors = store.get_vectors("visual", [12345])
    assert none_ids.shape == (0,) and none_vectors.shape == (0, DIM)
    assert store.get_vectors("clip", [12345])[1].shape == (0, 0)

    gone = records[4]
    store.upsert_segments([record(gone.source_id, gone.span.start_ns / S, audio=gone.embeddings["audio"])])
    left = np.concatenate([ids for ids, _ in store.iter_vectors("visual", batch_rows=7)])
    assert gone.segment_id not in left.tolist() and len(left) == 24


def test_analysis_round_trips_and_a_second_put_replaces_it(store):
    first_scores = [score(MATCH, 2, 0.5, ("applause",), "Applause"), score(MATCH, 0, 0.8, ("cheering", "loud"))]
    store.put_analysis(MATCH, cuts=[(5 * S, 0.75), (2 * S, 0.5)], scores=first_scores, summary=summary_json("first"))
    store.put_analysis("other", cuts=[(S, 0.9)], scores=[score("other", 0, 0.3)], summary=summary_json("other"))

    assert store.get_cuts(MATCH) == [(2 * S, 0.5), (5 * S, 0.75)]  # in time order
    assert store.highlight_scores(MATCH) == [first_scores[1], first_scores[0]]  # in time order, every field kept
    assert store.get_summary(MATCH) == summary_json("first")
    assert [s.source_id for s in store.highlight_scores()] == ["match", "match", "other"]

    second_scores = [score(MATCH, 4, 0.6, ("explosion",))]
    store.put_analysis(MATCH, cuts=[(7 * S, 0.6)], scores=second_scores, summary=summary_json("second"))
    assert store.get_cuts(MATCH) == [(7 * S, 0.6)]
    assert store.highlight_scores(MATCH) == second_scores
    assert store.get_summary(MATCH)["text"] == "second"

    # A segment's score is kept once: putting it under MATCH takes it from "other".
    taken = dataclasses.replace(score("other", 0, 0.9), source_id=MATCH)
    store.put_analysis(MATCH, cuts=[], scores=[taken], summary=None)
    assert store.highlight_scores(MATCH) == [taken] and store.highlight_scores("other") == []
    store.put_analysis("other", cuts=[(S, 0.9)], scores=[], summary=summary_json("other"))
    assert store.highlight_scores(MATCH) == [taken]  # clearing "other" does not reach the score it gave up
    assert store.get_cuts(MATCH) == [] and store.get_summary(MATCH) is None

    store.put_analysis(MATCH, cuts=[], scores=[], summary=None)
    assert store.highlight_scores() == [] and store.get_cuts("nobody") == [] and store.get_summary("nobody") is None
    assert store.get_cuts("other") == [(S, 0.9)] and store.get_summary("other")["text"] == "other"  # untouched


def test_checkpoints_round_trip_are_replaced_whole_and_refuse_nan(store):
    assert store.get_checkpoint("kafka:video:cam1") is None
    store.put_checkpoint("kafka:video:cam1", {"epochs": [[0, 0, 1_400_000_000]], "anchor_wall_ns": 2**62})
    store.put_checkpoint("live-status:cam1", {"state": "streaming", "lag_seconds": 1.5})
    assert store.get_checkpoint("kafka:video:cam1") == {"epochs": [[0, 0, 1_400_000_000]], "anchor_wall_ns": 2**62}
    store.put_checkpoint("kafka:video:cam1", {"epochs": []})
    assert store.get_checkpoint("kafka:video:cam1") == {"epochs": []}  # replaced, not merged
    assert store.get_checkpoint("live-status:cam1")["lag_seconds"] == 1.5
    with pytest.raises(ValueError):
        store.put_checkpoint("bad", {"lag": float("nan")})
    assert store.get_checkpoint("bad") is None


# -- Redis only ----------------------------------------------------------------------------------------------


@needs_redis
def test_keys_live_under_the_prefix_and_vectors_are_little_endian_float32(redis_server):
    prefix = fresh_prefix()
    store, neighbour = RedisStore(redis_server.url, prefix=prefix), RedisStore(redis_server.url, prefix=prefix + "x")
    assert RedisStore(redis_server.url, prefix=prefix).store_id == store.store_id != neighbour.store_id
    records = random_records(3, sources=1)
    store.upsert_segments(records)
    assert neighbour.count_segments() == 0 and list(neighbour.iter_vectors("visual")) == []

    admin = redis_server.client()
    keys = {k.decode().removeprefix(prefix + ":") for k in admin.keys(f"{prefix}:*")}
    assert {k for k in keys if not k.startswith("batch:")} == {
        "meta", "segments", "segments_by_time:src0",
        *(f"{kind}:{space}" for kind in ("space", "vectors", "vector_ids", "vector_revs")
          for space in ("visual", "audio", "speech", "all", "image"))}
    assert admin.type(f"{prefix}:segments_by_time:src0") == admin.type(f"{prefix}:vector_ids:visual") == b"zset"
    raw = admin.hget(f"{prefix}:vectors:visual", f"{records[0].segment_id + 2**63:016x}")
    np.testing.assert_allclose(np.frombuffer(raw, dtype="<f4"), records[0].embeddings["visual"], atol=1e-6)
    store.upsert_segments([dataclasses.replace(records[1], source_id="elsewhere")])  # leaves src0's time index
    assert admin.zcard(f"{prefix}:segments_by_time:src0") == 2
    assert admin.zcard(f"{prefix}:segments_by_time:elsewhere") == 1
    admin.close()
    for s in (store, neighbour):
        s.close()


@needs_redis
def test_vector_indexes_run_on_a_redis_store(redis_server, tmp_path, caplog):
    store = RedisStore(redis_server.url, prefix=fresh_prefix())
    records = random_records(30)
    target = records[7]
    indexes = VectorIndexes(tmp_path, store, VectorIndexConfig())
    indexes.apply(store.upsert_segments(records))
    scores, ids = indexes.search("visual", target.embeddings["visual"][None], 3)
    assert ids[0, 0] == target.segment_id and scores[0, 0] == pytest.approx(1.0, abs=1e-5)

    replaced = record(target.source_id, target.span.start_ns / S, visual=basis(5))
    indexes.apply(store.upsert_segments([replaced]))  # revision 2, applied in place
    scores, ids = indexes.search("visual", basis(5)[None], 1)
    assert ids[0, 0] == target.segment_id and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    indexes.save()

    with caplog.at_level(logging.INFO, logger="indexers.vectors"):
        reopened = VectorIndexes(tmp_path, store, VectorIndexConfig())
        assert reopened.counts() == {"all": 29, "audio": 29, "image": 29, "speech": 10, "visual": 30}
    assert "building" not in caplog.text  # the saved files match the Redis store's revisions: nothing rebuilt
    assert reopened.search("visual", basis(5)[None], 1)[1][0, 0] == target.segment_id


def test_what_changed_after_a_revision_is_read_back_as_one_change(store):
    first, second = random_records(10), random_records(5, seed=2, prefix="b")
    store.upsert_segments(first)
    since = revisions(store, ["visual"])["visual"]
    store.upsert_segments(second)
    store.delete_segments([first[0].segment_id])
    change = store.vector_changes("visual", since)
    assert change.revision == since + 2
    assert sorted(change.written_ids.tolist()) == sorted(r.segment_id for r in second)
    by_id = {r.segment_id: r.embeddings["visual"] for r in second}
    for sid, vector in zip(change.written_ids, change.written_vectors):
        np.testing.assert_allclose(vector, by_id[int(sid)], atol=1e-6)
    assert change.removed_ids.tolist() == [first[0].segment_id]
    nothing = store.vector_changes("visual", change.revision)
    assert (nothing.revision, len(nothing.written_ids), len(nothing.removed_ids)) == (change.revision, 0, 0)


@needs_redis
def test_two_workers_on_one_redis_store_replay_each_others_writes_instead_of_rebuilding(redis_server, tmp_path, caplog):
    # Issue 10, hole 6: with a shared store each worker rebuilt its indexes from scratch whenever
    # another had written in between its own writes.
    prefix = fresh_prefix()
    store_a, store_b = RedisStore(redis_server.url, prefix=prefix), RedisStore(redis_server.url, prefix=prefix)
    a = VectorIndexes(tmp_path / "a", store_a, VectorIndexConfig())
    a.apply(store_a.upsert_segments(random_records(20)))
    b = VectorIndexes(tmp_path / "b", store_b, VectorIndexConfig())  # its first open builds from the store
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="indexers.vectors"):
        for n in range(4):
            a.apply(store_a.upsert_segments(random_records(5, seed=10 + n, prefix=f"a{n}-")))
            b.apply(store_b.upsert_segments(random_records(5, seed=20 + n, prefix=f"b{n}-")))
    assert "building" not in caplog.text  # each caught up by replaying the other's revisions
    assert b.counts()["visual"] == 60 and a.counts()["visual"] == 55  # a has not seen b's last batch yet
    for target in random_records(5, seed=13, prefix="a3-"):  # a's last batch, found by b
        assert b.search("visual", target.embeddings["visual"][None], 1)[1][0, 0] == target.segment_id
    store_a.close()
    store_b.close()
