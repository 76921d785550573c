"""How each vector space is indexed, by its size: the choice ``VectorIndexes`` applies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]
INDEX_KINDS: tuple[IndexKind, ...] = ("auto", "flat", "hnsw", "ivf")
_MIN_TRAIN_PER_LIST = 39  # FAISS warns below 39 training vectors per IVF list
_FULL_LISTS_AT = 1_000_000
"""IVF lists grow with the square root of the count (FAISS's rule of thumb: 4-16 x sqrt(n)), up
to ``ivf_nlist`` at this many vectors. Training costs lists x 39 vectors x lists, so as many lists
as 39 a list allows (2,564 at 100,000) took 67 s a 384-d space here, a quarter of them 15 s;
and a space retrains only when its lists should double: at 4x the count, not 2x."""


@dataclass(frozen=True, slots=True)
class VectorIndexConfig:
    """How each space is indexed.

    ``flat`` is exact and scans every vector (about 0.3 ms per 10,000 384-d vectors on one core);
    ``ivf`` is approximate (a query visits ``ivf_nprobe`` of ``ivf_nlist`` lists), deletes in
    place, is retrained whenever its lists should double (at 4x the count they were sized for),
    keeps float32 vectors below ``sq8_threshold`` and 8-bit codes from there on (one byte a
    dimension, a quarter of float32; searches then rescore their candidates from the store's
    float32 vectors, so scores stay exact); ``hnsw`` answers in well under a millisecond for a
    query that looks like the stored vectors, builds slowly and cannot delete (replacing or
    removing a vector rebuilds it from the store). ``auto`` is flat below ``exact_threshold``
    vectors and IVF above.

    Why not HNSW in ``auto``: a text query lies far from every stored vector (the tenth best
    cosine is ~0.3), where a graph walk strays. At 30,000 segments (bench/scale.py, dev phrases)
    HNSW at ``efSearch`` 128 found 0.70-0.87 of a text query's exact ten per space (0.93-0.99 only
    at 1024, ~1.9 ms a query), IVF at 256 of 769 lists 0.97-0.99 in 0.6-0.9 ms. An HNSW graph over
    float32 also holds ~1.6 KB a 384-d vector: ~12 GB for a million segments' five spaces, where
    IVF-SQ8 holds ~2.9 GB.
    """

    kind: IndexKind = "auto"
    exact_threshold: int = 20_000
    sq8_threshold: int = 250_000
    """From this many vectors IVF keeps 8-bit codes: below it float32 (~0.96 GB for 250,000
    segments' five spaces) lets searches rescore from memory instead of the store."""
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    ivf_nlist: int = 4096
    ivf_nprobe: int = 256
    """Chosen at a million vectors on bench/scale.py's dev phrases (these 2 cores): text queries
    sit far from every vector, so they need many lists. A search's top 10 against the same search
    over exact candidates: 0.876 of the same moments at 128 probed, 0.929 at 256, 0.962 at 512;
    in-process p95 34 / 41 / 55 ms. 256 is the most the 50-ms served budget leaves. 4096 lists
    beat 1024: finer lists, more of them visited, cost less for more."""
    ivf_train_vectors: int = 160_000  # FAISS asks for 39 per list
    snapshot_min_changes: int = 2048
    snapshot_fraction: float = 0.25
    """``save(only_if_due=True)`` rewrites a space once this many vectors, and this share of its
    snapshot, were written or removed since the snapshot; until then opening replays them."""

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {INDEX_KINDS}, got {self.kind!r}")
        if self.sq8_threshold < 0:
            raise ValueError(f"index config: sq8_threshold must be at least 0, got {self.sq8_threshold}")
        for name in ("exact_threshold", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nlist",
                     "ivf_nprobe", "ivf_train_vectors"):
            if getattr(self, name) < 1:
                raise ValueError(f"index config: {name} must be at least 1, got {getattr(self, name)}")

    def layout(self, count: int) -> tuple[str, int]:
        """``(kind, nlist)`` a space of ``count`` vectors should have (nlist 0 unless IVF)."""
        kind = self.kind
        if kind == "auto":
            kind = "flat" if count < self.exact_threshold else "ivf"
        if kind != "ivf":
            return kind, 0
        grown = round(self.ivf_nlist * math.sqrt(count / _FULL_LISTS_AT))
        return kind, max(1, min(self.ivf_nlist, count // _MIN_TRAIN_PER_LIST, grown))

    def codes(self, count: int) -> Literal["float32", "sq8"]:
        """How an IVF index of ``count`` vectors keeps them."""
        return "sq8" if count >= self.sq8_threshold else "float32"
