"""What was said, searchable by its words: SQLite FTS5 with BM25, spelled and as it sounds.

The speech vectors (MiniLM) match a query that says the same thing in other words; they are weak
on rare names and exact phrasing ("capybara", "weasels have eaten our phone system"), which a
lexical index finds at once. Whisper mishears words ("capybara" as "kapibara", "weasels" as
"weasel's"), so each transcript is indexed twice: its words (Porter-stemmed by FTS5) and the
Metaphone codes of its words (jellyfish), which agree for words that sound alike.

Like the FAISS files, this index is derived from the store and lives beside it in
``DATA/words.sqlite3``: written with every upsert, rebuilt from the store when it is
missing or counts other segments than the store does (a crash between the two writes, or
another writer's segments in a shared Redis store).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Sequence

from indexers.store import MetadataStore
from operators.records import FusedRecord

FILE = "words.sqlite3"
_WORD = re.compile(r"[a-z0-9']+")
STOP_WORDS = frozenset(
    "a an and are as at be been but by can did do does for from had has have he her his i if in into is it its me my no not "
    "of on or our she so some someone says said say that the their them then there they this to too up was we were what "
    "when where which who will with you your".split()
)  # fmt: skip
SOUNDS_WEIGHT = 0.5
"""BM25 weight of the sound-alike column against the spelled words (1): a spelled match wins."""


def terms(text: str) -> list[str]:
    """The words of ``text`` that say something (lower case, stop words left out)."""
    return [w.strip("'") for w in _WORD.findall(text.lower()) if w.strip("'") and w.strip("'") not in STOP_WORDS]


def sounds(words: Iterable[str]) -> list[str]:
    import jellyfish

    return [code for code in (jellyfish.metaphone(w) for w in words if not w.isdigit()) if len(code) >= 2]


class LexicalIndex:
    """BM25 over every segment's transcript. Thread-safe within a process."""

    def __init__(self, folder: str | os.PathLike, store: MetadataStore, *, read_only: bool = False) -> None:
        """``read_only``: use the folder's file when it is up to date, else build the index in
        memory for this process; never write the folder."""
        folder = Path(folder)
        self._lock = threading.Lock()
        self._store = store
        if read_only:
            self._db = self._read_only(folder / FILE, store)
            return
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / FILE, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._create()
        if self._count() != store.count_segments():
            self._rebuild()

    def _create(self) -> None:
        self._db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS said USING fts5(words, sounds, tokenize='porter unicode61')")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (segment_id INTEGER PRIMARY KEY)")

    def _read_only(self, path: Path, store: MetadataStore) -> sqlite3.Connection:
        from indexers.sqlite_store import connect_read_only

        try:
            self._db = connect_read_only(path)
            if self._count() == store.count_segments():
                return self._db
            self._db.close()
        except (ValueError, sqlite3.Error):  # missing, unreadable or older than the store
            pass
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._create()
        self._rebuild()
        return self._db

    def _count(self) -> int:
        return self._db.execute("SELECT count(*) FROM seen").fetchone()[0]

    def _rebuild(self) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM said")
            self._db.execute("DELETE FROM seen")
            for source in self._store.list_sources():
                segments = self._store.segments_of_source(source.source_id)
                self._write((s.segment_id, s.transcript) for s in segments)
            self._db.execute("COMMIT")

    def apply(self, records: Sequence[FusedRecord]) -> None:
        """Index ``records``' transcripts (replacing what their segments said before)."""
        with self._lock:
            self._db.execute("BEGIN")
            self._write((r.segment_id, r.transcript) for r in records)
            self._db.execute("COMMIT")

    def remove(self, segment_ids: Iterable[int]) -> None:
        """Forget what these segments said."""
        with self._lock:
            self._db.execute("BEGIN")
            for sid in segment_ids:
                self._db.execute("DELETE FROM said WHERE rowid = ?", (int(sid),))
                self._db.execute("DELETE FROM seen WHERE segment_id = ?", (int(sid),))
            self._db.execute("COMMIT")

    def _write(self, rows: Iterable[tuple[int, str]]) -> None:
        for segment_id, transcript in rows:
            self._db.execute("DELETE FROM said WHERE rowid = ?", (segment_id,))
            self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (segment_id,))
            words = terms(transcript)
            if words:
                self._db.execute("INSERT INTO said(rowid, words, sounds) VALUES (?, ?, ?)",
                                 (segment_id, " ".join(words), " ".join(sounds(words))))

    def search(self, text: str, n: int) -> dict[int, float]:
        """Up to ``n`` segments whose words match ``text``, scored in (0, 1]: BM25 relative to
        the best match (1.0); empty when no word of the query was said."""
        words = terms(text)
        if not words:
            return {}
        quoted = " OR ".join(f'"{w}"' for w in words)
        query = f"words : ({quoted})"
        codes = sounds(words)
        if codes:
            query += " OR sounds : (" + " OR ".join(f'"{c}"' for c in codes) + ")"
        with self._lock:
            rows = self._db.execute(
                f"SELECT rowid, bm25(said, 1.0, {SOUNDS_WEIGHT}) AS rank FROM said WHERE said MATCH ? ORDER BY rank LIMIT ?",
                (query, n),
            ).fetchall()
        if not rows:
            return {}
        best = rows[0][1]  # BM25 here is negative: lower is better
        return {sid: rank / best for sid, rank in rows} if best < 0 else {}

    def close(self) -> None:
        self._db.close()
