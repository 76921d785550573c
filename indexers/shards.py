"""One data folder split by source into ``of`` shards, each searched by its own process (a Ray
Serve replica), for an index larger than one process should hold in memory.

A source belongs to shard ``hash(source_id) % of``: all its segments in one shard, so that the
moments cut from adjacent segments are the same as in the whole index. The metadata store stays
one (SQLite on a shared volume, or Redis); what a shard holds alone is the FAISS vectors of its
sources, built in memory from the store when it starts.

A query is answered exactly as the whole index answers it, in two rounds (``pipelines.serve.on_ray``):
every shard gives its best ``n`` candidates per vector space; the best ``n`` of each space over
all shards, with the query's BM25 word matches (one full-text index, the same in every shard),
are the candidates the whole index would have had; every shard then scores and cuts the moments
of those that are its own, and the best ``top_k`` of all shards' moments is the answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np


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


def merge_candidates(answers: list[dict], n: int) -> tuple[set[int], dict[int, float]]:
    """The candidates of the whole index from every shard's ``Searcher.candidates`` answer: the
    best ``n`` of each space over all shards, and the word matches (the same in each answer)."""
    best: dict[str, list[tuple[float, int]]] = {}
    for answer in answers:
        for space, pairs in answer["spaces"].items():
            best.setdefault(space, []).extend((score, sid) for sid, score in pairs)
    candidates = {sid for pairs in best.values() for _, sid in sorted(pairs, key=lambda p: (-p[0], p[1]))[:n]}
    words = {int(sid): score for sid, score in answers[0]["words"].items()} if answers else {}
    return candidates | set(words), words


def merge_moments(answers: list[list[dict]], top_k: int) -> list[dict]:
    """The best ``top_k`` of the shards' moments, in the order the whole index ranks them."""
    moments = [m for answer in answers for m in answer]
    moments.sort(key=lambda m: (-m.get("exact_score", m["score"]), m["source_id"], m["start"]))
    return [{k: v for k, v in m.items() if k != "exact_score"} for m in moments[:top_k]]


def search_shards(candidates: Callable[[str, int], list[dict]],
                  moments: Callable[[str, list[int], dict[int, float], int], list[list[dict]]],
                  text: str, top_k: int) -> list[dict]:
    """Both rounds: ``candidates`` and ``moments`` ask every shard at once and return their answers."""
    answers = candidates(text, top_k)
    if not answers:
        return []
    ids, words = merge_candidates(answers, max(a["n"] for a in answers))
    return merge_moments(moments(text, sorted(ids), words, top_k), top_k)
