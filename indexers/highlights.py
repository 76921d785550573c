"""Highlights as a query: the stored segment scores merged into moments, ranked, optionally
limited to moments that match a text ("a goal", "applause").

The text filter keeps a highlight when one of its segments matches the text nearly as well as
the best-matching highlight does (within ``text_margin``) and at least ``min_relevance``: the
same scores as ``search``, so "crowd cheering" keeps the cheering and drops the explosion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from indexers.index import SegmentIndex
from indexers.search import Searcher
from indexers.store import SourceInfo
from operators.analysis.highlights import HighlightMoment, merge_highlights
from operators.records import ns_to_seconds


@dataclass(frozen=True, slots=True)
class Highlight:
    moment: HighlightMoment
    source: SourceInfo | None
    relevance: float | None = None  # how well it matches the text filter, when there is one

    def to_json(self) -> dict:
        m = self.moment
        out = {
            "source": self.source.name if self.source else m.source_id,
            "source_id": m.source_id,
            "uri": self.source.uri if self.source else None,
            "start": ns_to_seconds(m.span.start_ns),
            "end": ns_to_seconds(m.span.end_ns),
            "score": round(m.score, 4),
            "labels": list(m.labels),
            "reason": m.reason,
            "kinds": highlight_kinds(m.labels),
            "segment_ids": [str(i) for i in m.segment_ids],
        }
        if self.relevance is not None:
            out["relevance"] = round(self.relevance, 4)
        return out


HighlightKind = Literal["sound", "loud", "visual", "speech"]
HIGHLIGHT_KINDS: tuple[HighlightKind, ...] = ("sound", "loud", "visual", "speech")
_KIND_OF_LABEL = {"loud": "loud", "emphatic speech": "speech", "fast motion": "visual", "rapid cuts": "visual"}


def highlight_kinds(labels: Sequence[str]) -> list[HighlightKind]:
    """What made a moment stand out, from its labels: a named sound (``sound``), a rise in level
    (``loud``), motion or cutting (``visual``), exclaimed speech (``speech``)."""
    kinds = {_KIND_OF_LABEL.get(label, "sound") for label in labels}
    return [k for k in HIGHLIGHT_KINDS if k in kinds]


def find_highlights(index: SegmentIndex, *, source_id: str | None = None, min_score: float, top_k: int | None = None,
                    text: str | None = None, searcher: Searcher | None = None, text_margin: float = 0.1,
                    min_relevance: float = 0.2) -> list[Highlight]:
    """Highlight moments of one source (or all), best first, scoring at least ``min_score``."""
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"--min-score lies in [0, 1], got {min_score}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    store = index.store
    by_source: dict[str, list] = {}
    for score in store.highlight_scores(source_id):
        by_source.setdefault(score.source_id, []).append(score)
    moments = []
    for sid, scores in by_source.items():
        cuts = [t for t, _ in store.get_cuts(sid)]
        moments += merge_highlights(scores, cuts, min_score=min_score)
    sources = {sid: store.get_source(sid) for sid in by_source}
    found = [Highlight(m, sources[m.source_id]) for m in moments]
    if text is not None:
        if searcher is None:
            raise ValueError("a text filter needs a searcher")
        relevance = searcher.relevance(text, [i for h in found for i in h.moment.segment_ids])
        scored = [Highlight(h.moment, h.source, max(relevance.get(i, 0.0) for i in h.moment.segment_ids)) for h in found]
        best = max((h.relevance for h in scored), default=0.0)
        found = [h for h in scored if h.relevance >= max(min_relevance, best - text_margin)]
    found.sort(key=lambda h: (-h.moment.score, h.moment.source_id, h.moment.span.start_ns))
    return found[:top_k] if top_k else found
