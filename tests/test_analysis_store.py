"""What a source's analysis leaves in the data folder (cuts, highlight scores, summary), and the
queries that read it: ``find_highlights`` and the searcher's respect for stored cuts.

Records are built with tests/test_index.py's helpers. ``MATCH`` is one source of six 2-s
segments, each described by one sentence and embedded by the real MiniLM encoder; their
highlight scores are set by hand:

    0-2 s   a crowd cheering in a stadium          0.8  cheering, loud
    2-4 s   the crowd keeps cheering and clapping  0.5  applause
    4-6 s   players walk back to their places      0.1
    6-8 s   a car explodes in a ball of fire       0.6  explosion
    8-10 s  quiet talk in the studio               0.05
    10-12 s a dog barks at the mailman             0.4  loud

so at ``min_score`` 0.3 the highlights are 0-4 s (0.8, two segments merged), 6-8 s (0.6) and
10-12 s (0.4), best first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from indexers.highlights import find_highlights
from indexers.index import SegmentIndex
from indexers.search import Searcher
from indexers.sqlite_store import SqliteStore
from indexers.store import SourceInfo
from operators.analysis.highlights import HighlightScore
from operators.records import NS_PER_SECOND, Span, segment_id
from operators.analysis.summary import Chapter, Summary
from operators.models.text import TextEncoder
from test_index import record, stand_in_query, with_cosine

S = NS_PER_SECOND
MATCH = "match"
SEGMENTS = (  # (start s, description, highlight score, labels)
    (0, "a crowd cheering in a stadium", 0.8, ("cheering", "loud")),
    (2, "the crowd keeps cheering and clapping", 0.5, ("applause",)),
    (4, "players walk back to their places", 0.1, ()),
    (6, "a car explodes in a ball of fire", 0.6, ("explosion",)),
    (8, "quiet talk in the studio", 0.05, ()),
    (10, "a dog barks at the mailman", 0.4, ("loud",)),
)


def score(source_id: str, start_s: float, value: float, labels: tuple[str, ...] = (), reason: str = "") -> HighlightScore:
    start_ns = int(start_s * S)
    return HighlightScore(segment_id(source_id, start_ns), source_id, Span(start_ns, start_ns + 2 * S), value, labels,
                          reason or f"{source_id} at {start_s:g}s")


def ids(source_id: str, *starts_s: float) -> tuple[int, ...]:
    return tuple(segment_id(source_id, int(t * S)) for t in starts_s)


def spans_s(found) -> list[tuple[float, float]]:
    return [(h.moment.span.start_ns / S, h.moment.span.end_ns / S) for h in found]


@pytest.fixture(scope="module")
def text() -> TextEncoder:
    encoder = TextEncoder(device="cpu")
    encoder.setup()
    return encoder


@pytest.fixture(scope="module")
def match_folder(tmp_path_factory, text) -> Path:
    """A data folder holding ``MATCH`` (embedded, scored, registered) and one highlight of another source."""
    folder = tmp_path_factory.mktemp("match")
    vectors = text.embed([description for _, description, _, _ in SEGMENTS])
    with SegmentIndex(folder) as index:
        index.add_source(SourceInfo(source_id=MATCH, uri="/videos/match.mp4", name="match.mp4", has_video=True,
                                    has_audio=True, status="done"))
        index.upsert([record(MATCH, start, description=description, all=vector)
                      for (start, description, _, _), vector in zip(SEGMENTS, vectors)])
        index.upsert([record("other", 0, description="fireworks over the bay", all=text.embed(["fireworks over the bay"])[0])])
        index.store.put_analysis(MATCH, cuts=[], scores=[score(MATCH, t, v, labels) for t, _, v, labels in SEGMENTS],
                                 summary=None)
        index.store.put_analysis("other", cuts=[], scores=[score("other", 0, 0.7, ("fireworks",))], summary=None)
    return folder


# -- put_analysis ------------------------------------------------------------------------------------------


def summary_json(text: str) -> dict:
    return Summary(MATCH, text, (Chapter(Span(0, 8 * S), "A stadium.", ("stadium",)),), (), "offline").to_json()


def test_analysis_round_trips_and_a_second_put_replaces_it(tmp_path):
    store = SqliteStore(tmp_path / "db.sqlite3")
    try:
        first_scores = [score(MATCH, 2, 0.5, ("applause",), "Applause"), score(MATCH, 0, 0.8, ("cheering", "loud"))]
        store.put_analysis(MATCH, cuts=[(5 * S, 0.75), (2 * S, 0.5)], scores=first_scores, summary=summary_json("first"))
        store.put_analysis("other", cuts=[(S, 0.9)], scores=[score("other", 0, 0.3)], summary=summary_json("other"))

        assert store.get_cuts(MATCH) == [(2 * S, 0.5), (5 * S, 0.75)]  # in time order
        assert store.highlight_scores(MATCH) == [first_scores[1], first_scores[0]]  # in time order, every field kept
        assert store.get_summary(MATCH) == summary_json("first")
        assert Summary.from_json(store.get_summary(MATCH)).chapters[0].labels == ("stadium",)
        assert [s.source_id for s in store.highlight_scores()] == ["match", "match", "other"]

        second_scores = [score(MATCH, 4, 0.6, ("explosion",))]
        store.put_analysis(MATCH, cuts=[(7 * S, 0.6)], scores=second_scores, summary=summary_json("second"))
        assert store.get_cuts(MATCH) == [(7 * S, 0.6)]
        assert store.highlight_scores(MATCH) == second_scores
        assert store.get_summary(MATCH)["text"] == "second"

        store.put_analysis(MATCH, cuts=[], scores=[], summary=None)
        assert store.get_cuts(MATCH) == [] and store.highlight_scores(MATCH) == [] and store.get_summary(MATCH) is None
        # The other source was never touched.
        assert store.get_cuts("other") == [(S, 0.9)] and len(store.highlight_scores("other")) == 1
        assert store.get_summary("other")["text"] == "other"
    finally:
        store.close()


def test_analysis_survives_reopening(tmp_path):
    with SegmentIndex(tmp_path) as index:
        index.store.put_analysis(MATCH, cuts=[(2 * S, 0.5)], scores=[score(MATCH, 0, 0.8)], summary=summary_json("kept"))
    with SegmentIndex(tmp_path) as index:
        assert index.store.get_cuts(MATCH) == [(2 * S, 0.5)]
        assert [s.score for s in index.store.highlight_scores(MATCH)] == [0.8]
        assert index.store.get_summary(MATCH)["text"] == "kept"


# -- find_highlights ----------------------------------------------------------------------------------------


def test_highlights_come_best_first_above_min_score(match_folder):
    with SegmentIndex(match_folder) as index:
        found = find_highlights(index, source_id=MATCH, min_score=0.3)
        assert spans_s(found) == [(0, 4), (6, 8), (10, 12)]
        assert [h.moment.score for h in found] == [0.8, 0.6, 0.4]
        assert found[0].moment.segment_ids == ids(MATCH, 0, 2)
        assert spans_s(find_highlights(index, source_id=MATCH, min_score=0.5)) == [(0, 4), (6, 8)]
        assert spans_s(find_highlights(index, source_id=MATCH, min_score=0.3, top_k=2)) == [(0, 4), (6, 8)]
        assert find_highlights(index, source_id=MATCH, min_score=0.9) == []
        everything = find_highlights(index, min_score=0.3)  # every source
        assert [(h.moment.source_id, h.moment.score) for h in everything] == [
            ("match", 0.8), ("other", 0.7), ("match", 0.6), ("match", 0.4)]
        out = found[0].to_json()
        assert {k: out[k] for k in ("source", "uri", "start", "end", "score")} == {
            "source": "match.mp4", "uri": "/videos/match.mp4", "start": 0.0, "end": 4.0, "score": 0.8}
        assert "relevance" not in out
        with pytest.raises(ValueError, match="min-score"):
            find_highlights(index, min_score=1.5)
        with pytest.raises(ValueError, match="a text filter needs a searcher"):
            find_highlights(index, min_score=0.3, text="cheering")


def test_a_text_filter_keeps_the_highlights_that_match(match_folder, text):
    with SegmentIndex(match_folder) as index:
        searcher = Searcher(index, text.embed)
        (cheering,) = find_highlights(index, source_id=MATCH, min_score=0.3, text="crowd cheering", searcher=searcher)
        assert spans_s([cheering]) == [(0, 4)] and cheering.relevance > 0.6
        assert cheering.to_json()["relevance"] == pytest.approx(cheering.relevance, abs=1e-4)
        (explosion,) = find_highlights(index, source_id=MATCH, min_score=0.3, text="an explosion", searcher=searcher)
        assert spans_s([explosion]) == [(6, 8)]
        (dog,) = find_highlights(index, source_id=MATCH, min_score=0.3, text="a barking dog", searcher=searcher)
        assert spans_s([dog]) == [(10, 12)]
        # The filter keeps only what also scores: the matching quiet talk is below min_score.
        assert find_highlights(index, source_id=MATCH, min_score=0.3, text="quiet talk in the studio", searcher=searcher) == []


def test_a_stored_cut_splits_visual_highlights_but_not_one_cheer(tmp_path):
    visual = [score(MATCH, 0, 0.6, ("fast motion",)), score(MATCH, 2, 0.5, ("rapid cuts",))]
    with SegmentIndex(tmp_path) as index:
        index.store.put_analysis(MATCH, cuts=[], scores=visual, summary=None)
        assert spans_s(find_highlights(index, min_score=0.3)) == [(0, 4)]
        index.store.put_analysis(MATCH, cuts=[(2 * S, 0.9)], scores=visual, summary=None)
        assert spans_s(find_highlights(index, min_score=0.3)) == [(0, 2), (2, 4)]
        heard = [score(MATCH, 0, 0.6, ("cheering", "loud")), score(MATCH, 2, 0.5, ("applause",))]
        index.store.put_analysis(MATCH, cuts=[(2 * S, 0.9)], scores=heard, summary=None)
        assert spans_s(find_highlights(index, min_score=0.3)) == [(0, 4)]


# -- the searcher and stored cuts -----------------------------------------------------------------------------


def test_search_does_not_merge_adjacent_matches_across_a_stored_cut(tmp_path):
    records = [record("cut", 0, all=with_cosine(0.90, 1)), record("cut", 2, all=with_cosine(0.88, 2)),
               record("cut", 4, all=with_cosine(0.86, 3)), record("cut", 6, all=with_cosine(0.10, 4))]
    with SegmentIndex(tmp_path) as index:
        index.upsert(records)
        whole = Searcher(index, stand_in_query).search("anything", top_k=5)
        assert [(m.start_ns / S, m.end_ns / S) for m in whole][:1] == [(0, 6)]
        among = Searcher(index, stand_in_query).search_among("anything", ids("cut", 0, 2, 4), top_k=5)
        assert [m.segment_ids for m in among] == [ids("cut", 0, 2, 4)]

        index.store.put_analysis("cut", cuts=[(int(3.8 * S), 0.9)], scores=[], summary=None)  # nearest the 4-s junction
        searcher = Searcher(index, stand_in_query)
        split = searcher.search("anything", top_k=5)
        assert [(m.start_ns / S, m.end_ns / S, round(m.score, 4)) for m in split][:2] == [(0, 4, 0.9), (4, 6, 0.86)]
        among = searcher.search_among("anything", ids("cut", 0, 2, 4), top_k=5)
        assert [m.segment_ids for m in among] == [ids("cut", 0, 2), ids("cut", 4)]
        relevance = searcher.relevance("anything", ids("cut", 0, 2, 4))
        assert {k: round(v, 4) for k, v in relevance.items()} == dict(zip(ids("cut", 0, 2, 4), (0.9, 0.88, 0.86)))
