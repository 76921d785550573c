"""One FAISS index per vector space, kept in step with the store and saved atomically.

Vectors are L2-normalised, so inner product is cosine similarity; FAISS ids are segment ids.
The store is the source of truth: an index that is missing, unreadable or behind the store when
a folder is opened is rebuilt from it (and the rebuild is logged), so the worst a crash can cost
is rebuild time, never a wrong answer.

On disk (the ``index/`` folder of a data folder)::

    manifest.json          {"format", "store_id", "generation", "spaces": {space: {file, kind, dim, count, revision}}}
    visual.7.faiss ...     one file per space, named with the generation that wrote it
    .lock                  held (flock) while a save runs

A save writes each changed index to ``<file>.tmp``, fsyncs it and renames it to a name no
manifest uses yet, then replaces ``manifest.json`` the same way, and only then deletes the files
the new manifest no longer names. A crash anywhere before the manifest rename leaves the previous
manifest naming the previous, untouched files.

Snapshot and log. A file is a snapshot of its space at a ``revision``; the store keeps, per
vector, the revision that wrote it and, per removal, the one that removed it: its log. Opening
a folder loads each snapshot and replays what the store changed after it (``vector_changes``),
and a writer that finds another's revisions between its own (workers sharing a Redis store)
replays them too: neither rebuilds. So a live run need not rewrite its files to stay readable:
``save(only_if_due=True)``, every couple of seconds, writes a space again only once what changed
since its snapshot reaches ``snapshot_fraction`` of it (and ``snapshot_min_changes``); saves
cost what was added, not what the index holds.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import faiss
import numpy as np

from indexers.store import VECTOR_SPACES, MetadataStore, VectorChange, VectorSpaceState
from indexers.vector_config import VectorIndexConfig

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


class _Space:
    """One loaded index and what it reflects: the store ``revision`` it matches and its file."""

    __slots__ = ("name", "index", "kind", "nlist", "codes", "revision", "file", "changed", "_held", "_held_at", "lock")

    def __init__(self, name: str, index: faiss.Index, revision: int, file: str | None) -> None:
        self.name, self.index, self.revision, self.file = name, index, revision, file
        self.changed = 0  # vectors written or removed since the snapshot in ``file``
        self._held: np.ndarray | None = None  # the ids it holds, sorted, as of ``_held_at``
        self._held_at: tuple[int, int] = (-1, -1)
        self.lock = threading.Lock()  # its searches and changes: searches of other spaces run beside them
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
        self.codes = "sq8" if isinstance(index, faiss.IndexIVFScalarQuantizer) else "float32"
        if isinstance(index, faiss.IndexIVF):
            self.kind, self.nlist = "ivf", index.nlist
        elif isinstance(inner, faiss.IndexHNSW):
            self.kind, self.nlist = "hnsw", 0
        else:
            self.kind, self.nlist = "flat", 0

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def held(self, ids: np.ndarray) -> np.ndarray:
        """Those of ``ids`` this index holds."""
        if self._held_at != (self.revision, self.count):
            self._held = np.sort(self._ids())
            self._held_at = (self.revision, self.count)
        return ids[_found_in(self._held, ids)]

    def took(self, written: np.ndarray, gone: np.ndarray) -> None:
        """Keep the held ids level with a change just applied in place: two O(n) copies instead of
        reading every id again (~23 ms from 1,295 IVF lists) at the next search."""
        if self._held is None:
            return
        held = self._held
        if len(gone):
            held = np.delete(held, np.searchsorted(held, gone)[_found_in(held, gone)])
        if len(written):
            new = np.unique(written)
            fresh = ~_found_in(held, new)
            held = np.insert(held, np.searchsorted(held, new[fresh]), new[fresh])
        self._held, self._held_at = held, (self.revision, self.count)

    def _ids(self) -> np.ndarray:
        if not isinstance(self.index, faiss.IndexIVF):
            return faiss.vector_to_array(self.index.id_map)
        lists = self.index.invlists
        return np.concatenate([np.zeros(0, np.int64)] + [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy() for i in range(self.nlist) if lists.list_size(i)])

    def fits(self, config: VectorIndexConfig) -> bool:
        kind, nlist = config.layout(self.count)
        if kind != self.kind:
            return False
        return kind != "ivf" or (self.nlist <= config.ivf_nlist and nlist < 2 * self.nlist
                                 and self.codes == config.codes(self.count))


def _found_in(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """bool mask: which of ``ids`` are in ``sorted_ids``."""
    if not len(sorted_ids):
        return np.zeros(len(ids), bool)
    return sorted_ids[np.searchsorted(sorted_ids, ids).clip(0, len(sorted_ids) - 1)] == ids


class VectorIndexes:
    """The FAISS indexes of one data folder, one per space in ``VECTOR_SPACES``.

    Not safe for several writer processes on one folder: each keeps its own in-memory indexes,
    and the store's revision check makes a reader (or the next open) rebuild rather than trust an
    index another writer left behind. Thread-safe within a process.
    """

    def __init__(self, folder: str | os.PathLike, store: MetadataStore, config: VectorIndexConfig, *,
                 read_only: bool = False, keep: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """``read_only``: load the saved indexes that match the store, rebuild the others in
        memory, and never write the folder (``save`` does nothing).

        ``keep``: hold only the vectors of the segment ids it marks True (one shard of the
        store, ``indexers.shards``, whose snapshots live in ``folder`` of their own), and filter
        what the store gains later the same way. Such a folder is only ever written by
        ``save``: the store is the writer's."""
        self.folder = Path(folder)
        self.read_only = read_only
        self.keep = keep
        if not read_only:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.config = config
        self._store = store
        self._lock = threading.RLock()
        self._spaces: dict[str, _Space] = {}
        self._stale: set[str] = set()  # rebuild from the store before next use
        self._unsaved: set[str] = set()  # differs from what the manifest on disk describes
        manifest = self._read_manifest()
        for name in VECTOR_SPACES:
            state = store.vector_space(name)
            if state is None or state.count == 0:
                if manifest and name in manifest["spaces"]:
                    self._unsaved.add(name)
                continue
            space = self._load(name, state, manifest)
            if space is None:
                self._stale.add(name)
                self._unsaved.add(name)
            elif not space.fits(config):
                log.info("vector index %s: %s with %d vectors does not fit the config (%s); rebuilding",
                         name, space.kind, space.count, config.kind)
                self._stale.add(name)
                self._unsaved.add(name)
            else:
                self._spaces[name] = space
                if space.changed:  # replayed from the store's log: a full save() brings its snapshot level
                    self._unsaved.add(name)
        self._rebuild_stale()

    # -- reading ----------------------------------------------------------------------------------

    def _read_manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
            if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("spaces"), dict):
                raise ValueError(f"unknown manifest format {manifest.get('format')!r}")
        except (OSError, ValueError) as exc:
            log.warning("vector indexes: %s is unreadable (%s); rebuilding every index from the store", path, exc)
            return None
        return manifest

    def _load(self, name: str, state: VectorSpaceState, manifest: dict | None) -> _Space | None:
        """The saved index of ``name`` if it matches the store exactly, else None (and say why)."""
        entry = manifest["spaces"].get(name) if manifest else None
        if entry is None:
            reason = "no saved index"
        elif manifest["store_id"] != self._store.store_id:
            reason = "the saved index belongs to another database"
        elif entry["dim"] != state.dim or entry["revision"] > state.revision:
            reason = (f"the saved index (revision {entry['revision']}, {entry['dim']}-d) is not an earlier state of "
                      f"the store (revision {state.revision}, {state.dim}-d)")
        else:
            path = self.folder / entry["file"]
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as exc:  # FAISS raises RuntimeError for missing and damaged files alike
                reason = f"{path.name} is missing or unreadable ({str(exc).splitlines()[0]})"
            else:
                space = _Space(name, index, entry["revision"], entry["file"])
                if index.ntotal != entry["count"] or index.d != state.dim:
                    reason = f"{path.name} holds {index.ntotal} {index.d}-d vectors, its manifest says {entry['count']}"
                elif space.revision < state.revision and not self._catch_up(space):
                    reason = f"what the store changed after revision {space.revision} cannot be replayed on it"
                elif self.keep is None and space.count != state.count:  # a shard holds a part: its revision says enough
                    reason = (f"replayed to revision {space.revision} it holds {space.count} vectors, the store "
                              f"{state.count}")
                else:
                    if entry["revision"] < state.revision:
                        log.info("vector index %s: snapshot at revision %d, replayed to %d from the store", name,
                                 entry["revision"], space.revision)
                    self._tune(space)
                    return space
        log.warning("vector index %s: %s; rebuilding it from the store", name, reason)
        return None

    def _tune(self, space: _Space) -> None:
        """Search-time knobs come from the config, not from whatever the file was saved with."""
        if space.kind == "hnsw":
            faiss.downcast_index(space.index.index).hnsw.efSearch = self.config.hnsw_ef_search
        elif space.kind == "ivf":
            space.index.nprobe = min(self.config.ivf_nprobe, space.nlist)

    # -- building ---------------------------------------------------------------------------------

    def _rebuild_stale(self) -> None:
        for name in sorted(self._stale):
            self._rebuild(name)
        self._stale.clear()

    def _rebuild(self, name: str) -> None:
        # The revision is read before the vectors: if another process writes in between, the index
        # holds more than its revision says and is merely rebuilt once more later; read after, it
        # could claim a revision whose vectors it lacks.
        state = self._store.vector_space(name)
        self._spaces.pop(name, None)
        self._unsaved.add(name)
        if state is None or state.count == 0:
            return
        kind, nlist = self.config.layout(state.count)
        log.info("vector index %s: building %s over %d %d-d vectors from the store", name, kind, state.count, state.dim)
        batches = self._store.iter_vectors(name)
        if self.keep is not None:
            batches = ((ids[m], vectors[m]) for ids, vectors in batches if (m := self.keep(ids)).any())
        if kind == "ivf":
            index, pending = self._trained_ivf(state.dim, nlist, self.config.codes(state.count), batches)
        else:
            index, pending = self._empty(kind, state.dim), []
        for ids, vectors in [*pending, *batches]:
            index.add_with_ids(vectors, ids)
        space = _Space(name, index, state.revision, None)
        self._tune(space)
        self._spaces[name] = space

    def _empty(self, kind: str, dim: int) -> faiss.Index:
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = self.config.hnsw_ef_construction
            return faiss.IndexIDMap2(hnsw)
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def _trained_ivf(self, dim: int, nlist: int, codes: str, batches: Iterator) -> tuple[faiss.Index, list]:
        """An IVF index trained on the first ``ivf_train_vectors`` vectors (ids are hashes, so id
        order is a fair sample), plus the batches read for training and not yet added.

        IVF keeps the segment ids itself (``add_with_ids``) instead of sitting under an
        ``IndexIDMap2``: the map compacts its positions on ``remove_ids`` while IVF does not, which
        silently mislabels every result after the first removal.
        """
        pending, seen = [], 0
        for ids, vectors in batches:
            pending.append((ids, vectors))
            seen += len(ids)
            if seen >= self.config.ivf_train_vectors:
                break
        sample = np.concatenate([v for _, v in pending])[: self.config.ivf_train_vectors]
        quantiser = faiss.IndexFlatIP(dim)
        if codes == "sq8":
            index = faiss.IndexIVFScalarQuantizer(quantiser, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(quantiser, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # layout() keeps 39 per list; below 39 vectors one list is right
        index.train(sample)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # lets remove_ids find an id without a scan
        return index, pending

    # -- writing ----------------------------------------------------------------------------------

    def apply(self, changes: Sequence[VectorChange]) -> None:
        """Bring the indexes level with a committed upsert. Revisions another writer made in
        between are replayed from the store first. A change the index cannot take in place (HNSW
        replace/remove, a space that outgrew its layout) marks the space for a rebuild from the
        store before its next use."""
        with self._lock:
            for change in changes:
                self._unsaved.add(change.space)
                space = self._spaces.get(change.space)
                if space is None and change.revision == 1 and change.space not in self._stale:
                    space = self._first(change)  # a space's first vectors: nothing to rebuild from
                if space is None or change.space in self._stale:
                    self._stale.add(change.space)
                elif space.revision + 1 != change.revision:  # another writer's revisions in between
                    if not self._catch_up(space):  # the store's changes since, this one among them
                        self._stale.add(change.space)
                elif not self._take(space, change, replay=False):
                    self._stale.add(change.space)
                if space is not None and not space.fits(self.config):
                    self._stale.add(change.space)

    def _first(self, change: VectorChange) -> _Space | None:
        """An empty index for a space's first revision (IVF needs training: built from the store)."""
        kind, _ = self.config.layout(len(change.written_ids))
        if kind == "ivf":
            return None
        space = self._spaces[change.space] = _Space(change.space, self._empty(kind, change.written_vectors.shape[1]), 0, None)
        self._tune(space)
        return space

    def _take(self, space: _Space, change: VectorChange, *, replay: bool) -> bool:
        """Apply ``change`` in place; False if this index cannot (HNSW cannot remove). In a replay
        ``replaced_ids`` is every written id: only those the index holds are replaced."""
        if self.keep is not None and len(change.written_ids):
            mine = self.keep(change.written_ids)
            change = replace(change, written_ids=change.written_ids[mine], written_vectors=change.written_vectors[mine])
        gone = np.concatenate([change.replaced_ids, change.removed_ids])
        if len(gone) and space.kind == "hnsw":
            if not replay:
                return False
            held = faiss.vector_to_array(space.index.id_map)
            if np.isin(gone, held).any():
                return False
            gone = gone[:0]
        with space.lock:
            if len(gone):
                space.index.remove_ids(gone)
            if len(change.written_ids):
                space.index.add_with_ids(change.written_vectors, change.written_ids)
        space.revision = change.revision
        space.changed += len(change.written_ids) + len(change.removed_ids)
        space.took(change.written_ids, gone)
        return True

    def _catch_up(self, space: _Space) -> bool:
        """Replay on ``space`` what the store changed after its revision; False if it cannot."""
        change = self._store.vector_changes(space.name, space.revision)
        if change is None or change.revision < space.revision:
            return False
        if change.revision == space.revision:
            return True
        return self._take(space, change, replay=True)

    def save(self, *, only_if_due: bool = False) -> None:
        """Write every index that changed since the last save, atomically (see the module doc).
        Does nothing, and touches no file, when nothing changed. ``only_if_due``: only the spaces
        whose change since their snapshot is large enough (``snapshot_fraction``); the others
        are read back from the store's log when the folder is opened."""
        with self._lock:
            if only_if_due:
                due = {name for name, space in self._spaces.items() if self._snapshot_due(space)}
                if not (due or self._stale or set(self._unsaved) - set(self._spaces)):
                    return
            self._rebuild_stale()
            if not self._unsaved or self.read_only:
                return
            with _flock(self.folder / ".lock"):
                on_disk = self._read_manifest()
                generation = (on_disk["generation"] if on_disk else 0) + 1
                reusable = on_disk["spaces"] if on_disk and on_disk["store_id"] == self._store.store_id else {}
                entries = {}
                for name, space in sorted(self._spaces.items()):
                    entry = reusable.get(name)
                    keep = (entry is not None and entry["file"] == space.file and (self.folder / entry["file"]).exists()
                            and (name not in self._unsaved or (only_if_due and not self._snapshot_due(space))))
                    if not keep:
                        entry = {"file": f"{name}.{generation}.faiss", "kind": space.kind, "dim": int(space.index.d),
                                 "count": space.count, "revision": space.revision}
                        _write_index(space.index, self.folder / entry["file"])
                        space.changed = 0
                    entries[name] = entry
                if on_disk and on_disk["store_id"] == self._store.store_id and entries == on_disk["spaces"]:
                    self._unsaved = {name for name, space in self._spaces.items() if space.changed}
                    return  # every snapshot kept: nothing to write
                _fsync_dir(self.folder)
                manifest = {"format": MANIFEST_FORMAT, "store_id": self._store.store_id, "generation": generation,
                            "spaces": entries}
                _write_bytes(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode())
                for name, space in self._spaces.items():
                    space.file = entries[name]["file"]
                self._unsaved = {name for name, space in self._spaces.items() if space.changed}
                self._remove_unreferenced({e["file"] for e in entries.values()})

    def _snapshot_due(self, space: _Space) -> bool:
        if space.file is None:
            return True
        snapshot = max(space.count - space.changed, 0)
        return space.changed >= max(self.config.snapshot_min_changes, self.config.snapshot_fraction * snapshot)

    def _remove_unreferenced(self, keep: set[str]) -> None:
        for path in self.folder.iterdir():
            if path.name not in keep and (path.suffix == ".faiss" or path.name.endswith(".faiss.tmp")):
                path.unlink(missing_ok=True)

    # -- searching --------------------------------------------------------------------------------

    def get_vectors(self, space: str, segment_ids) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of ``segment_ids`` that have a vector in ``space``, read back from
        the in-memory index (it holds the store's normalised float32 vectors as of its revision,
        as its searches do), from the store when the index keeps none to read (IVF-SQ8: its 8-bit
        codes clip what lies outside their trained range, so scores come from the store) or is
        stale: a search rescores its candidates without a row read per vector."""
        ids = np.fromiter(segment_ids, dtype=np.int64)
        with self._lock:
            found = self._spaces.get(space) if space not in self._stale else None
            if found is not None and found.codes == "float32":
                held = found.held(ids)
                vectors = found.index.reconstruct_batch(held) if len(held) else np.zeros((0, found.index.d), np.float32)
                if self.keep is None or len(held) == len(ids):
                    return held, vectors
                # One shard: the other shards' segments (a search within a source) come from the store.
                more_ids, more = self._store.get_vectors(space, np.setdiff1d(ids, held).tolist())
                return np.concatenate([held, more_ids]), np.concatenate([vectors, more])
        return self._store.get_vectors(space, ids.tolist())

    def refresh(self) -> None:
        """Catch up with what other processes committed since (a long-lived reader, such as
        ``vidscope serve``, beside a running ingest): each space's revision is read from the
        store (one small read per space) and newer changes are replayed, or the space rebuilt
        at its next use when they cannot be."""
        with self._lock:
            for name in VECTOR_SPACES:
                revision = self._store.vector_revision(name)  # not vector_space: its count scans the space
                space = self._spaces.get(name)
                if revision is None or (space is not None and space.revision == revision):
                    continue
                if space is None or revision < space.revision or not self._catch_up(space):
                    self._stale.add(name)

    def search(self, space: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores float32 [q, k'], ids int64 [q, k'])``, best first, k' <= k (no ``-1`` padding
        columns); empty when the space holds nothing. Queries must be L2-normalised float32."""
        with self._lock:
            if space in self._stale:
                self._rebuild(space)
                self._stale.discard(space)
            found = self._spaces.get(space)
            if found is None or k < 1:
                return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
            if queries.shape[1] != found.index.d:
                raise ValueError(f"a {queries.shape[1]}-d query cannot search the {found.index.d}-d {space} index; "
                                 "was the query encoded by another model than the one that built this index?")
            k = min(k, found.count)
            if k < 1:  # an empty space (a shard whose sources have none of it)
                return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        # Outside the indexes' lock: searches of several spaces (one query, Searcher) run at once.
        with found.lock:
            if found.kind == "hnsw":
                faiss.downcast_index(found.index.index).hnsw.efSearch = max(self.config.hnsw_ef_search, k)
            with _one_thread_for(len(queries)):
                scores, ids = found.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        keep = (ids >= 0).all(axis=0)  # HNSW/IVF may find fewer than k: drop all-padding columns
        return scores[:, keep], ids[:, keep]

    def dim(self, space: str) -> int | None:
        with self._lock:
            found = self._spaces.get(space)
            if found is not None:
                return int(found.index.d)
        state = self._store.vector_space(space)
        return state.dim if state else None

    def counts(self) -> dict[str, int]:
        """Vectors per space, as the in-memory indexes hold them (rebuilding stale ones first)."""
        with self._lock:
            self._rebuild_stale()
            return {name: space.count for name, space in sorted(self._spaces.items())}

    def kinds(self) -> dict[str, str]:
        with self._lock:
            self._rebuild_stale()
            return {name: space.kind for name, space in sorted(self._spaces.items())}


@contextmanager
def _one_thread_for(n_queries: int) -> Iterator[None]:
    """Run a single query on the calling thread alone. OpenMP's fork/join costs more than it saves
    on one query (0.26 ms against 1.4 ms for 10,000 flat vectors here), and its workers keep
    spinning afterwards, stealing the cores the text encoder needs: measured ~20 ms end to end
    instead of 200-550 ms on 2 busy cores. ``omp_set_num_threads`` is per calling thread in
    libgomp, so concurrent searches and index builds on other threads keep their own setting."""
    if n_queries != 1:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _write_index(index: faiss.Index, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        faiss.write_index(index, str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
