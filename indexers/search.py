"""Text to moments: embed the query once, search every text space, merge, cut clips.

Scoring a segment (``SearchConfig``): each text space gives a cosine similarity between the
query and what the segment saw, heard or said (or its whole description, ``all``). The segment
scores the best of them, plus ``agree_bonus`` for every further modality (visual, audio, speech)
within ``agree_margin`` of that best.

- Max, not mean: "someone says goal" is answered by the transcript alone, and averaging in the
  visual and audio views, which are silent about it, would bury a perfect single-modality match.
- The bonus: a crowd that is both seen and heard cheering is a better answer than one only seen.
  It is small (0.05 against cosine gaps of 0.1-0.3 between a match and a non-match in MiniLM
  space) so that it reorders near-ties and never overrides a clearly better single match.
  ``all`` is not counted: it contains the other views, so it would "agree" with every match.
- Scores are exact: candidates come from each space's FAISS index (approximate for HNSW/IVF),
  then every candidate is rescored in every space from the store's vectors, so a segment found
  through its speech is not missing its visual score because it ranked outside the visual top N.
  Scores are comparable within one query only.

Cutting clips: a candidate at the top of a run of time-adjacent candidates of the same source
takes its neighbours while they score within ``merge_margin`` of it, up to ``max_moment_ns``. A
moment scores its best segment and carries that segment's description, labels and words.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

from indexers.index import SegmentIndex
from indexers.store import IMAGE_SPACE, TEXT_SPACES, SourceInfo, StoredSegment
from operators.records import JOINT_SPACES, MODALITIES, NS_PER_SECOND, Scored, ns_to_seconds

EmbedText = Callable[[list[str]], np.ndarray]
_POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="vidscope-search")
"""Searches the vector spaces of one query side by side (a thread each, up to the cores)."""


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """How candidates are gathered, scored and merged (see the module doc for why)."""

    candidates_per_space: int = 50  # at least 4 * top_k are taken regardless; each costs a row read
    agree_bonus: float = 0.05
    agree_margin: float = 0.1
    merge_margin: float = 0.1
    merge_gap_ns: int = 0  # segments this far apart (or overlapping) count as adjacent
    max_moment_ns: int = 60 * NS_PER_SECOND
    words_weight: float = 0.1
    """The speech space's score gains this much times the BM25 match of the query's words to the
    segment's (indexers.lexical; 1 for the best match): exact and sound-alike words lift a
    transcript that the vectors rank near but not first."""
    audio_scale: float = 0.8
    """The audio space's cosines are scaled by this: its class-space vectors (operators/models/classes.py)
    are mixtures of sound names and sit nearer every short query than a picture's or a sentence's."""
    joint_scale: float = 2.0
    """CLIP cosines between a caption and a matching picture sit near 0.3, MiniLM cosines between
    two phrasings of one thing near 0.6: joint-space scores are scaled to compete. Not tuned on
    real CLIP weights (none ship in a package this project can install)."""

    def __post_init__(self) -> None:
        if self.candidates_per_space < 1:
            raise ValueError(f"candidates_per_space must be at least 1, got {self.candidates_per_space}")
        for name in ("agree_bonus", "agree_margin", "merge_margin", "merge_gap_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"search config: {name} must not be negative, got {getattr(self, name)}")
        if self.max_moment_ns <= 0:
            raise ValueError(f"max_moment_ns must be positive, got {self.max_moment_ns}")


@dataclass(frozen=True, slots=True)
class Moment:
    """A clip that matches: ``[start_ns, end_ns)`` of one source, its score and why."""

    source_id: str
    source_name: str
    source_uri: str | None  # None when the source was never registered with add_source
    start_ns: int
    end_ns: int
    score: float
    segment_ids: tuple[int, ...]  # in time order
    best_segment_id: int
    description: str
    labels: Scored
    events: Scored
    transcript: str
    space_scores: tuple[tuple[str, float], ...]  # the best segment's similarity per space, best first

    def to_json(self) -> dict:
        """Seconds and plain types for ``--json`` and the HTTP API. Segment ids are strings:
        they exceed 2**53, which JSON readers in browsers cannot hold exactly."""
        return {
            "source": self.source_name,
            "source_id": self.source_id,
            "uri": self.source_uri,
            "start": ns_to_seconds(self.start_ns),
            "end": ns_to_seconds(self.end_ns),
            "score": round(self.score, 4),
            "segment_ids": [str(i) for i in self.segment_ids],
            "description": self.description,
            "labels": [label for label, _ in self.labels],
            "events": [event for event, _ in self.events],
            "transcript": self.transcript,
            "why": {space: round(score, 4) for space, score in self.space_scores},
        }


@dataclass(frozen=True, slots=True)
class _Span:
    """What merging needs of a candidate (its row is read only if it heads a returned moment)."""

    segment_id: int
    source_id: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True, slots=True)
class _Hit:
    segment: _Span
    score: float
    space_scores: tuple[tuple[str, float], ...]


class Searcher:
    """Searches one ``SegmentIndex``. ``embed_text`` maps a list of strings to L2-normalised
    float32 vectors ``[n, dim]`` in the space the index was built with (the pipelines pass
    ``operators.models.text.TextEncoder.embed``)."""

    def __init__(self, index: SegmentIndex, embed_text: EmbedText, *, joint: Mapping[str, EmbedText] | None = None,
                 config: SearchConfig | None = None) -> None:
        """``joint`` embeds queries for the joint image-text spaces (``clip``: the CLIP text tower)."""
        self.index = index
        self.embed_text = embed_text
        self.joint = dict(joint or {})
        self.config = config or SearchConfig()
        self._cuts: dict[str, list[int]] = {}

    def search(self, text: str, top_k: int = 10) -> list[Moment]:
        """Moments matching ``text``, best first; at most ``top_k``, fewer when the index is small."""
        queries, words, n = self.plan(text, top_k)
        return self._moments(self._scores(queries, n, words), top_k)

    def plan(self, text: str, top_k: int) -> tuple[dict[str, np.ndarray], dict[int, float], int]:
        """A search's first step, and what the front of sharded search does once for all shards
        (``indexers.shards``): the query's vectors, its BM25 word matches, and the ``n``
        candidates each space gives."""
        _check_top_k(top_k)
        n = max(self.config.candidates_per_space, 4 * top_k)
        # The words' BM25 search (SQLite) beside the query's embedding (onnxruntime): both release
        # the GIL, and neither needs the other.
        words = _POOL.submit(self._words, text, n)
        return self._queries(text), words.result(), n

    def candidates(self, queries: dict[str, np.ndarray], n: int) -> dict[str, list[tuple[int, float]]]:
        """A shard's first round: its best ``n`` candidates per space, ``{space: [(id, score)...]}``."""
        found = self._per_space(queries, n)
        return {space: list(zip(ids.tolist(), scores.tolist())) for space, (scores, ids) in found.items()}

    def moments_of(self, queries: dict[str, np.ndarray], candidates: Iterable[int], words: dict[int, float],
                   top_k: int, holds: Callable[[str], bool]) -> list[Moment]:
        """A shard's second round: the moments ``search`` would cut from ``candidates`` (the whole
        index's), of the sources ``holds`` says are this shard's."""
        spans = self.index.store.get_spans(candidates)
        mine = {sid for sid, (source_id, _, _) in spans.items() if holds(source_id)}
        return self._moments(self._rescore(queries, mine, words), top_k)

    def search_vector(self, query: np.ndarray, top_k: int = 10) -> list[Moment]:
        """``search`` for an already embedded query (float32 ``[dim]``, L2-normalised, text space)."""
        _check_top_k(top_k)
        queries = {space: np.asarray(query, np.float32) for space in TEXT_SPACES}
        return self._moments(self._scores(queries, max(self.config.candidates_per_space, 4 * top_k)), top_k)

    def relevance(self, text: str, segment_ids: Iterable[int]) -> dict[int, float]:
        """How well each of ``segment_ids`` matches ``text`` (the search score, exact, no index)."""
        ids = set(segment_ids)
        return {sid: score for sid, (score, _) in self._rescore(self._queries(text), ids, self._words(text, None, ids)).items()}

    def search_among(self, text: str, segment_ids: Iterable[int], top_k: int = 10) -> list[Moment]:
        """``search`` limited to ``segment_ids`` (one source's, for ``ask``), scored exactly."""
        _check_top_k(top_k)
        ids = set(segment_ids)
        return self._moments(self._rescore(self._queries(text), ids, self._words(text, None, ids)), top_k)

    def _words(self, text: str, n: int | None, among: set[int] | None = None) -> dict[int, float]:
        """BM25 matches of ``text``'s words: the best ``n``, or those of ``among``."""
        if not self.config.words_weight:
            return {}
        found = self.index.lexical.search(text, n if n is not None else 10_000)
        return found if among is None else {sid: s for sid, s in found.items() if sid in among}

    def _queries(self, text: str) -> dict[str, np.ndarray]:
        if not text or not text.strip():
            raise ValueError("the search text is empty")
        shared = self._embed(text, self.embed_text)
        queries = {space: shared for space in TEXT_SPACES}
        for space, embed in self.joint.items():
            queries[space] = self._embed(text, embed)
        return queries

    def _per_space(self, queries: dict[str, np.ndarray], n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each space's best ``n``: ``{space: (scores, ids)}``."""
        spaces = [space for space in queries if self.index.vectors.dim(space) is not None]

        def search(space: str) -> tuple[np.ndarray, np.ndarray]:
            scores, ids = self.index.vectors.search(space, queries[space].reshape(1, -1), n)
            return scores[0], ids[0]

        # The spaces' searches at once (FAISS releases the GIL): one query's latency on several cores.
        return dict(zip(spaces, _POOL.map(search, spaces) if len(spaces) > 1 else map(search, spaces)))

    def _scores(self, queries: dict[str, np.ndarray], n: int, words: dict[int, float] | None = None) -> dict[int, tuple[float, tuple]]:
        candidates: set[int] = set(words or ())
        for _, ids in self._per_space(queries, n).values():
            candidates.update(ids.tolist())
        return self._rescore(queries, candidates, words)

    def _rescore(self, queries: dict[str, np.ndarray], candidates: set[int],
                 words: dict[int, float] | None = None) -> dict[int, tuple[float, tuple]]:
        per_segment: dict[int, dict[str, float]] = {}
        for space, query in queries.items():
            if self.index.vectors.dim(space) is None:
                continue
            ids, vectors = self.index.vectors.get_vectors(space, candidates)
            scale = self.config.joint_scale if space in JOINT_SPACES else self.config.audio_scale if space == "audio" else 1.0
            lifted = words if space == "speech" and words else {}
            for sid, score in zip(ids.tolist(), (vectors @ query).tolist()):
                per_segment.setdefault(sid, {})[space] = score * scale + self.config.words_weight * lifted.get(sid, 0.0)
        return {sid: self._fuse(scores) for sid, scores in per_segment.items()}

    def similar_images(self, segment_id: int, top_k: int = 10) -> list[Moment]:
        """Moments whose frames look like segment ``segment_id``'s (cosine of the frame encoder's
        features), best first, the segment itself left out."""
        _check_top_k(top_k)
        ids, vectors = self.index.store.get_vectors(IMAGE_SPACE, [segment_id])
        if not len(ids):
            raise ValueError(f"segment {segment_id} has no image features here (no frame, or not in this index)")
        n = max(self.config.candidates_per_space, 4 * top_k) + 1
        scores, found = self.index.vectors.search(IMAGE_SPACE, vectors, n)
        pairs = zip(found[0].tolist(), scores[0].tolist())
        scored = {sid: (s, ((IMAGE_SPACE, s),)) for sid, s in pairs if sid != segment_id}
        return self._moments(scored, top_k)

    def _embed(self, text: str, embed: EmbedText) -> np.ndarray:
        vectors = np.asarray(embed([text]), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != 1:
            raise ValueError(f"a text embedder must return one vector per text, [1, dim]; got shape {vectors.shape}")
        norm = float(np.linalg.norm(vectors[0]))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError(f"the query {text!r} embeds to a zero or non-finite vector")
        return vectors[0] / norm

    def _fuse(self, scores: dict[str, float]) -> tuple[float, tuple[tuple[str, float], ...]]:
        ranked = tuple(sorted(scores.items(), key=lambda kv: -kv[1]))
        best = ranked[0][1]
        agreeing = sum(1 for space, s in ranked if space in MODALITIES and s >= best - self.config.agree_margin)
        return best + self.config.agree_bonus * max(0, agreeing - 1), ranked

    def _moments(self, scored: dict[int, tuple[float, tuple]], top_k: int) -> list[Moment]:
        self._cuts.clear()  # read once per query: a live source gains cuts while it is searched
        spans = self.index.store.get_spans(scored)
        by_source: dict[str, list[_Hit]] = {}
        for sid, (source_id, start_ns, end_ns) in spans.items():
            score, space_scores = scored[sid]
            by_source.setdefault(source_id, []).append(_Hit(_Span(sid, source_id, start_ns, end_ns), score, space_scores))
        position = {}
        for hits in by_source.values():
            hits.sort(key=lambda h: h.segment.start_ns)
            position.update((h.segment.segment_id, i) for i, h in enumerate(hits))
        peaks = sorted((h for hits in by_source.values() for h in hits),
                       key=lambda h: (-h.score, h.segment.source_id, h.segment.start_ns))
        used: set[int] = set()
        runs = []
        for peak in peaks:
            if len(runs) == top_k:
                break
            if peak.segment.segment_id in used:
                continue
            run = self._run(by_source[peak.segment.source_id], position[peak.segment.segment_id], used)
            used.update(h.segment.segment_id for h in run)
            runs.append((peak, run))
        rows = self.index.store.get_segments([peak.segment.segment_id for peak, _ in runs])
        sources: dict[str, SourceInfo | None] = {}
        for source_id in dict.fromkeys(peak.segment.source_id for peak, _ in runs):
            sources[source_id] = self.index.store.get_source(source_id)
        return [_moment(peak, run, rows[peak.segment.segment_id], sources[peak.segment.source_id])
                for peak, run in runs if peak.segment.segment_id in rows]  # a row deleted in between: left out

    def _run(self, hits: list[_Hit], i: int, used: set[int]) -> list[_Hit]:
        """The peak ``hits[i]`` and the adjacent unused hits around it that score within
        ``merge_margin`` of it, keeping the clip within ``max_moment_ns``."""
        cfg = self.config
        floor = hits[i].score - cfg.merge_margin

        def joins(before: _Hit, after: _Hit, candidate: _Hit, start_ns: int, end_ns: int) -> bool:
            return (after.segment.start_ns - before.segment.end_ns <= cfg.merge_gap_ns
                    and candidate.segment.segment_id not in used and candidate.score >= floor
                    and end_ns - start_ns <= cfg.max_moment_ns)

        cuts = self._cuts_of(hits[i].segment.source_id)

        def cut_between(before: _Hit, after: _Hit) -> bool:
            """A hard cut lies nearer to this junction than to any other: the moment ends there."""
            half = (after.segment.end_ns - after.segment.start_ns) // 2
            return any(abs(t - after.segment.start_ns) <= half for t in cuts)

        def joins_here(before: _Hit, after: _Hit, candidate: _Hit, start_ns: int, end_ns: int) -> bool:
            return joins(before, after, candidate, start_ns, end_ns) and not cut_between(before, after)

        lo = hi = i
        end_ns = hits[i].segment.end_ns
        while lo > 0 and joins_here(hits[lo - 1], hits[lo], hits[lo - 1], hits[lo - 1].segment.start_ns, end_ns):
            lo -= 1
        while hi + 1 < len(hits):
            following = hits[hi + 1]
            if not joins_here(hits[hi], following, following, hits[lo].segment.start_ns, max(end_ns, following.segment.end_ns)):
                break
            hi += 1
            end_ns = max(end_ns, following.segment.end_ns)
        return hits[lo : hi + 1]


    def _cuts_of(self, source_id: str) -> list[int]:
        if source_id not in self._cuts:
            self._cuts[source_id] = [t for t, _ in self.index.store.get_cuts(source_id)]
        return self._cuts[source_id]


def _moment(peak: _Hit, run: list[_Hit], best: StoredSegment, source: SourceInfo | None) -> Moment:
    return Moment(
        source_id=best.source_id,
        source_name=source.name if source else best.source_id,
        source_uri=source.uri if source else None,
        start_ns=run[0].segment.start_ns,
        end_ns=max(h.segment.end_ns for h in run),
        score=peak.score,
        segment_ids=tuple(h.segment.segment_id for h in run),
        best_segment_id=best.segment_id,
        description=best.description,
        labels=best.labels,
        events=best.events,
        transcript=best.transcript,
        space_scores=peak.space_scores,
    )


def _check_top_k(top_k: int) -> None:
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive whole number, got {top_k!r}")
