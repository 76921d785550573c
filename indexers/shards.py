"""One data folder split by source into ``of`` shards, each searched by its own process (a Ray
Serve replica), for an index larger than one process should hold in memory.

A source belongs to shard ``hash(source_id) % of``: all its segments in one shard, so that the
moments cut from adjacent segments are the same as in the whole index. The metadata store stays
one (SQLite on a shared volume, or Redis); what a shard holds alone is the FAISS vectors of its
sources, built in memory from the store when it starts.

A query is answered exactly as the whole index answers it, in two rounds (``pipelines.serve.on_ray``).
The front (a process holding no vectors) embeds the query and matches its words (one full-text
index for all) once; every shard gives its best ``n`` candidates per vector space for those
vectors; the best ``n`` of each space over all shards, with the word matches, are the candidates
the whole index would have had; every shard then scores and cuts the moments of those that are
its own, and the best ``top_k`` of all shards' moments is the answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from indexers.search import Searcher


def shard_of(source_id: str, shards: int) -> int:
    return int.from_bytes(hashlib.blake2b(source_id.encode(), digest_size=8).digest(), "little") % shards


@dataclass(frozen=True, slots=True)
class Shard:
    number: int
    of: int
    """``of == 0``: a process that holds no vectors (the API in front of the shards)."""

    def __post_init__(self) -> None:
        if self.of < 0 or (self.of and not 0 <= self.number < self.of):
            raise ValueError(f"shard {self.number} of {self.of} does not exist")

    def holds(self, source_id: str) -> bool:
        return self.of > 0 and shard_of(source_id, self.of) == self.number

    def keeper(self, store) -> Callable[[np.ndarray], np.ndarray]:
        """``ids -> mask`` of the segment ids whose source is in this shard (read from ``store``)."""

        def keep(ids: np.ndarray) -> np.ndarray:
            if not self.of:
                return np.zeros(len(ids), bool)
            spans = store.get_spans(ids.tolist())
            return np.fromiter((self.holds(spans[i][0]) if i in spans else False for i in ids.tolist()), bool, len(ids))

        return keep


def merge_candidates(answers: list[dict[str, list]], n: int) -> set[int]:
    """The candidates of the whole index from every shard's ``Searcher.candidates`` answer: the
    best ``n`` of each space over all shards."""
    best: dict[str, list[tuple[float, int]]] = {}
    for answer in answers:
        for space, pairs in answer.items():
            best.setdefault(space, []).extend((score, sid) for sid, score in pairs)
    return {sid for pairs in best.values() for _, sid in sorted(pairs, key=lambda p: (-p[0], p[1]))[:n]}


def merge_moments(answers: list[list[dict]], top_k: int) -> list[dict]:
    """The best ``top_k`` of the shards' moments, in the order the whole index ranks them."""
    moments = [m for answer in answers for m in answer]
    moments.sort(key=lambda m: (-m.get("exact_score", m["score"]), m["source_id"], m["start"]))
    return [{k: v for k, v in m.items() if k != "exact_score"} for m in moments[:top_k]]


def search_shards(front: "Searcher", ask: Callable[..., list], text: str, top_k: int) -> list[dict]:
    """Both rounds. ``front`` embeds and matches words once; ``ask(method, *args)`` calls
    ``method`` (``candidates``, ``moments_of``) on every shard at once and returns their answers."""
    queries, words, n = front.plan(text, top_k)
    ids = merge_candidates(ask("candidates", queries, n), n) | set(words)
    return merge_moments(ask("moments_of", queries, sorted(ids), words, top_k), top_k)
