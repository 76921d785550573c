"""What is computed of a source once all its segments are indexed: its shots' cuts, a highlight
score per moment and what its summary is written from (``Driver`` sends that to the ``summary``
stage). Live runs score their moments with ``signals_of`` as they are written."""

from __future__ import annotations

from indexers.store import MetadataStore, StoredSegment
from operators.analysis.highlights import HighlightScore, HighlightScorer, Signals, merge_highlights
from operators.analysis.shots import ShotResult
from operators.analysis.summary import SegmentFacts, SummaryInput
from operators.records import Span

DEFAULT_MIN_SCORE = 0.3
"""Highlight score a moment needs by default (``vidscope highlights --min-score``). On
bench/quality.py's test split it keeps 23 of 24 sound events, 92% of highlights being one."""


def source_analysis(store: MetadataStore, source_id: str, name: str, run_start_ns: int, shot_results: list[ShotResult],
                    ) -> tuple[list[tuple[int, float]], list[HighlightScore], SummaryInput]:
    """Cuts, highlight scores and the summary's input of a source whose segments are all stored.

    This run's range (from ``run_start_ns`` on) is scored with this run's shots; what earlier runs
    found before it (a live stream restarted) is kept, so history is merged, not lost."""
    stored = store.segments_of_source(source_id)
    shots = {r.segment_id: r for r in shot_results}
    scorer = HighlightScorer()
    scores = [h for h in store.highlight_scores(source_id) if h.span.end_ns <= run_start_ns]
    scores += scorer.process([signals_of(s, shots.get(s.segment_id)) for s in stored if s.start_ns >= run_start_ns])
    scores += scorer.flush()
    cuts = [(t, score) for t, score in store.get_cuts(source_id) if t < run_start_ns]
    cuts += [(t, score) for r in shot_results for t, score in zip(r.cuts_ns, r.cut_scores)]
    item = SummaryInput(
        source_id=source_id, name=name, duration_ns=max((s.end_ns for s in stored), default=0),
        segments=tuple(SegmentFacts(s.start_ns, s.end_ns, s.description, s.labels, s.events, s.transcript) for s in stored),
        cuts_ns=tuple(t for t, _ in cuts),
        highlights=tuple(merge_highlights(scores, [t for t, _ in cuts], min_score=DEFAULT_MIN_SCORE)))
    return cuts, scores, item


def signals_of(segment: StoredSegment, shot: ShotResult | None) -> Signals:
    """What the highlight scorer reads of a stored segment and its shot result."""
    return Signals(segment.segment_id, segment.source_id, Span(segment.start_ns, segment.end_ns), segment.events,
                   segment.loudness_db, shot.motion if shot else 0.0, len(shot.cuts_ns) if shot else 0, segment.transcript,
                   segment.class_scores("audio"))
