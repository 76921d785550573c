"""The ingest driver: one loop for files, camera streams and Kafka topics.

What differs between inputs is a *source kind* (``SourceKind``): which sources there are to read
now, the streaming generator of one source's segments, how a reader that died is replaced with
its own state, and what to do once a stream time is durable (Kafka commits). Backpressure is the
kind's too, inside its reader actors: a camera thins then drops, a file or a Kafka log blocks.
The split follows Bytewax's sources (``next_batch`` / ``snapshot``) and Flink's checkpointed
sources: the reader knows how to resume, the runtime knows when something is safe.

The driver owns everything else, the same for every kind: it pulls segments while fewer than
``max_segments_in_flight`` are unfinished, sends each to the encoders that apply (frames to
``visual``/``clip``, audio to ``audio``/``speech``), batches consecutive segments of a source per
stage, joins the results into ``Observations`` for ``fuse``, writes the fused records, retries a
segment whose encoder or fuser failed once, and when a source ends computes its shots,
highlights and summary. Live kinds also get, every ``SAVE_EVERY_S``: the index saved, each
stream's status written, and what is durable reported to the kind; their highlight events and
chapters (``pipelines.live.outputs.LiveOutputs``) follow the writes in stream order.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

import ray

from indexers.store import SourceInfo
from operators.analysis.fuse import Observations
from operators.media.jpeg import thumbnail_jpeg
from operators.records import Segment
from operators.analysis.summary import SummaryInput
from pipelines.ingest.analysis import source_analysis
from pipelines.ingest.kinds import Progress, SourceKind, SourceOutcome
from pipelines.ingest.runtime import SourceReport
from pipelines.ingest.state import SegmentState, SourceState

if TYPE_CHECKING:
    from pipelines.ingest.batch import Ingestor

log = logging.getLogger(__name__)

ENCODERS = ("visual", "audio", "speech", "clip", "caption")
PICTURE_STAGES = ("visual", "clip")
SOUND_STAGES = ("audio", "speech")
CONTEXT_STAGE = "speech"
"""The stage whose result for a segment depends on its neighbours: Whisper hears a batch's
contiguous segments as one run, and a phrase cut at a batch's edge is heard worse."""
SAVE_EVERY_S = 2.0
"""Live kinds: the index is saved (searchable from other processes) and statuses written this often."""
MAX_ATTEMPTS = 2
"""Tries a segment gets at a stage that failed (a worker that crashed is restarted by Ray): a
transient crash costs nothing; a segment that fails twice is given up, counted and logged, and
the source goes on (a live stream's commits move past it)."""
FORGOTTEN = -1
"""In a batch in flight, the place of a segment dropped since (its reader's node was lost)."""
MAX_READER_RESTARTS = 10
"""Times one source's reader may die and be replaced in one run before the source fails."""
STORE_PROBE_EVERY_S = 1.0
"""While the metadata store is unreachable, how often the driver asks whether it is back."""


class Driver:
    """One run over one source kind. ``go`` returns when the kind has nothing more and everything
    taken is indexed and analysed (a live kind: after ``stop`` is set)."""

    def __init__(self, ingestor: "Ingestor", kind: SourceKind, *, stop: threading.Event | None = None, outputs=None,
                 on_progress: Progress | None = None) -> None:
        """``outputs``: a live kind's ``LiveOutputs`` (highlight events, chapters, status files)."""
        self.ing, self.kind, self.stop_event, self.outputs = ingestor, kind, stop, outputs
        self.index = ingestor.index
        self.on_progress = on_progress
        self.max_in_flight = ingestor.config.max_segments_in_flight
        self.inflight: dict[ray.ObjectRef, tuple[str, list[int]]] = {}
        self.segs: dict[int, SegmentState] = {}
        self.active: list[SourceState] = []
        self.outcomes: list[SourceOutcome] = []
        self.fuse_buffer: list[tuple[int, Observations]] = []
        self.fused = False  # the first fused batch goes as soon as it has one moment
        self.summaries: dict[ray.ObjectRef, Callable[[dict | None], None]] = {}
        self.segments_done = 0
        self.media_ns_done = 0
        self.stopping = False
        self.next_save = time.monotonic() + SAVE_EVERY_S
        self.save_seconds = 0.0  # the last periodic save's
        self.deferred: list[tuple[Callable[[dict | None], None], dict | None]] = []  # summaries waiting for the store
        self._scored_at = 0
        self.store_down_since: float | None = None  # the store (Redis) unreachable since then: records wait
        self.unwritten: list[tuple[list[int], list]] = []  # fused records waiting for the store, in order
        self._next_probe = 0.0
        if outputs is not None:
            outputs.summarise = self.summarise

    # -- the loop --------------------------------------------------------------------------------

    def go(self) -> None:
        while True:
            if self.store_down_since is not None:
                self._probe_store()
            if self.store_down_since is None:
                self._with_store(self._housekeeping)
                for outcome in self._with_store(self.kind.take) or []:
                    self._start(outcome)
            elif self.stop_event is not None and self.stop_event.is_set() and not self.stopping:
                self.stopping = True
                self.kind.stop()
            if not (self.active or self.inflight or self.kind.pending()):
                return
            waitables = list(self.inflight)
            if len(self.segs) < self.max_in_flight:
                waitables += [s.gen for s in self.active if s.decoding]
            if not waitables:
                # Nothing running and nothing to pull: send the partial batches.
                if not self._dispatch(final=True):
                    time.sleep(0.01)  # nothing to wait on this turn: do not spin
                    self._finish_sources()
                    if not self.inflight and self.active and not any(s.decoding for s in self.active):
                        for src in self.active:  # defensive: never hang on a lost segment
                            src.outcome.error = src.outcome.error or f"{src.outcome.ref.uri}: {src.unfinished} segments were lost"
                            src.unfinished = 0
                        self._finish_sources()
                continue
            ready, _ = ray.wait(waitables, num_returns=1, timeout=1.0)
            if ready:
                more, _ = ray.wait(waitables, num_returns=len(waitables), timeout=0)
                ready = list({id(r): r for r in ready + more}.values())
            for item in ready:
                if isinstance(item, ray.ObjectRef):
                    self._collect(item)
                else:
                    self._pull(next(s for s in self.active if s.gen is item))
            # Partial batches of a file wait for more segments (a Whisper call costs the same for
            # 2 s as for 30 s) unless the in-flight limit is what stops more from coming. A live
            # stream never ends: what is buffered goes as soon as a worker is free.
            gated = len(self.segs) >= self.max_in_flight
            self._dispatch(final=self.kind.live or (gated and not self.inflight))
            self._with_store(self._finish_sources)

    # -- the store going away --------------------------------------------------------------------

    def _with_store(self, work: Callable[[], object]):
        """``work()``, unless the store is unreachable (a Redis outage longer than its own retries):
        then the driver holds what it would write and goes on reading and encoding until it returns."""
        if self.store_down_since is not None:
            return None
        try:
            return work()
        except ConnectionError as exc:
            self._store_lost(exc)
            return None

    def _store_lost(self, exc: Exception) -> None:
        if self.store_down_since is None:
            self.store_down_since = time.monotonic()
            self._next_probe = self.store_down_since + STORE_PROBE_EVERY_S
            log.error("the metadata store is unreachable (%s): holding what is indexed until it returns", exc)

    def _probe_store(self) -> None:
        if time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + STORE_PROBE_EVERY_S
        if not self.index.store.ping():
            return
        down_s = time.monotonic() - self.store_down_since
        held, self.unwritten = self.unwritten, []
        self.store_down_since = None
        log.warning("the metadata store is back after %.0f s: writing %d held segments", down_s,
                    sum(len(sids) for sids, _ in held))
        for n, (sids, records) in enumerate(held):
            self._write(sids, records)
            if self.store_down_since is not None:  # gone again: the rest waits too, in order
                self.unwritten += held[n + 1:]
                return
        deferred, self.deferred = self.deferred, []
        for n, (done, summary) in enumerate(deferred):
            try:
                done(summary)
            except ConnectionError as exc:
                self._store_lost(exc)
                self.deferred = deferred[n:]
                return

    def _housekeeping(self) -> None:
        if self.stop_event is not None and self.stop_event.is_set() and not self.stopping:
            self.stopping = True
            log.warning("stopping %s: indexing what was read, then saving",
                        ", ".join(s.outcome.ref.name for s in self.active) or "the run")
            self.kind.stop()
        if self.outputs is not None and self.segments_done != self._scored_at:
            self._scored_at = self.segments_done
            for src in self.active:
                self.outputs.score(src.outcome, src.shot_results, self._horizon(src))
        if self.kind.live and time.monotonic() >= self.next_save:
            self.next_save = time.monotonic() + SAVE_EVERY_S
            started = time.perf_counter()
            self.index.save(only_if_due=True)  # a snapshot when one is due; readers replay the rest from the store
            self.save_seconds = time.perf_counter() - started
            for src in self.active:
                if (durable_ns := self._durable_ns(src)) is not None:
                    self.kind.durable(src.outcome, durable_ns)
                if self.outputs is not None and (status := self.kind.status(src.outcome)) is not None:
                    status.update(segments_indexed=src.outcome.segments_indexed, segments_failed=src.outcome.segments_failed,
                                  save_seconds=round(self.save_seconds, 4),
                                  restarts=status.get("restarts", 0) + src.outcome.restarts)
                    self.outputs.write_status(src.outcome, status, stopping=self.stopping)

    def _horizon(self, src: SourceState) -> int | None:
        """Start of the source's earliest segment still in flight (fuse finishes out of order)."""
        in_flight = [seg.span.start_ns for seg in self.segs.values() if seg.source is src]
        return min(in_flight) if in_flight else None

    def _durable_ns(self, src: SourceState) -> int | None:
        """Stream time before which every segment of the source pulled so far is written."""
        horizon = self._horizon(src)
        return horizon if horizon is not None else (src.pulled_end_ns if src.first_start_ns is not None else None)

    # -- reading ---------------------------------------------------------------------------------

    def _start(self, outcome: SourceOutcome) -> None:
        self.outcomes.append(outcome)
        stages = {name: [] for name in self.ing.pools if name in ENCODERS}
        self.active.append(SourceState(outcome, self.kind.open(outcome), stages))
        if self.outputs is not None:
            self.outputs.add(outcome)

    def _pull(self, src: SourceState) -> None:
        try:
            ref = next(src.gen)
            item = ray.get(ref)
        except StopIteration:
            src.decoding = False
            return
        except ray.exceptions.RayError as exc:
            self._reader_died(src, exc)
            return
        if isinstance(item, SourceReport):
            src.outcome.report = item
            if item.error:
                src.outcome.error = item.error
            src.decoding = False
            return
        segment: Segment = item
        if segment.id in self.segs:  # read again by a restarted reader while the first read is in flight
            return
        if src.first_start_ns is None:
            src.first_start_ns = segment.span.start_ns
        if segment.span.start_ns >= src.pulled_end_ns:  # new: not one read again after its reader's node was lost
            src.pulled_end_ns = segment.span.end_ns
            self.kind.on_segment(src.outcome, segment)
            if self.outputs is not None:
                self.outputs.on_segment(src.outcome, segment)
            src.shot_results += src.shots.process([segment])  # in order: a source's segments arrive in time order
        needs = set()
        if len(segment.frames):
            needs.update(PICTURE_STAGES)
        if segment.audio is not None:
            needs.update(SOUND_STAGES)
        if len(segment.frames) or segment.audio is not None:
            needs.add("caption")
        needs &= self.ing.pools.keys()
        seg = SegmentState(src, ref, segment.span, needs, thumbnail_jpeg=thumbnail_jpeg(segment))
        self.segs[segment.id] = seg
        src.unfinished += 1
        for stage in needs:
            src.buffers[stage].append((segment.id, ref))
        if not needs:
            self._ready_to_fuse(segment.id)

    def _reader_died(self, src: SourceState, exc: Exception) -> None:
        outcome = src.outcome
        gen = None
        if not self.stopping and outcome.restarts < MAX_READER_RESTARTS:
            # A kind that replays reads again what the dead reader had given and is not written yet:
            # those segments may have been held only by its node's object store.
            resume_ns = self._forget_unwritten(src) if self.kind.replays else src.pulled_end_ns
            gen = self.kind.reopen(outcome, resume_ns)
        if gen is None:
            src.decoding = False
            outcome.error = outcome.error or f"{outcome.ref.uri}: reader crashed: {exc}"
            return
        outcome.restarts += 1
        log.warning("%s: reader died (%s); restarted after %.1f s of stream (restart %d)", outcome.ref.name,
                    type(exc).__name__, src.pulled_end_ns / 1e9, outcome.restarts)
        src.gen = gen

    def _forget_unwritten(self, src: SourceState) -> int:
        """Drop the source's segments not yet written (and their places in buffers and batches in
        flight, whose results are then ignored); returns where the first of them starts."""
        for sid in [sid for sid, seg in self.segs.items() if seg.source is src and seg.counted]:
            self._settle(sid)  # written, heard alone: that stands
        src.heard_first = None
        lost = {sid for sid, seg in self.segs.items() if seg.source is src and not seg.counted}
        resume_ns = min((self.segs[sid].span.start_ns for sid in lost), default=src.pulled_end_ns)
        for sid in lost:
            del self.segs[sid]
        src.unfinished -= len(lost)
        for stage, buf in src.buffers.items():
            src.buffers[stage] = [(sid, r) for sid, r in buf if sid not in lost]
        self.fuse_buffer = [(sid, obs) for sid, obs in self.fuse_buffer if sid not in lost]
        for ref, (stage, sids) in self.inflight.items():
            self.inflight[ref] = (stage, [FORGOTTEN if sid in lost else sid for sid in sids])
        if lost:
            log.warning("%s: %d segments not yet indexed are read again from %.1f s", src.outcome.ref.name, len(lost),
                        resume_ns / 1e9)
        return resume_ns

    # -- encoders and fusion ---------------------------------------------------------------------

    def _dispatch(self, *, final: bool) -> int:
        """Submit full batches (partial ones too when ``final`` or the source has ended)."""
        sent = 0
        for stage, pool in self.ing.pools.items():
            if stage not in ENCODERS:
                continue
            batch_size = self.ing.operators[stage].batch_size
            for src in self.active:
                buf = src.buffers[stage]
                flush = final or not src.decoding
                # A source's first batch to each stage is its first segment alone, so the first
                # moment is searchable seconds sooner; the second is one short of full, so that
                # every later batch starts where it would have (speech hears minute-long runs whose
                # edges change what Whisper makes of the words across them; a file's second
                # speech batch starts again at its first segment: ``_hear_in_context``).
                while buf and pool.has_free():
                    earlier = src.batches.get(stage, 0)
                    size = 1 if earlier == 0 else batch_size - 1 if earlier == 1 and batch_size > 1 else batch_size
                    if len(buf) < size and not flush:
                        break
                    src.batches[stage] = earlier + 1
                    batch, src.buffers[stage] = buf[:size], buf[size:]
                    buf = src.buffers[stage]
                    if stage == CONTEXT_STAGE and not self.kind.live:
                        batch = self._hear_in_context(src, batch, earlier)
                    self.inflight[pool.submit(stage, [r for _, r in batch])] = (stage, [sid for sid, _ in batch])
                    sent += 1
                if stage == CONTEXT_STAGE and src.heard_first and not buf and not src.decoding:
                    self._settle(src.heard_first[0])  # nothing came after it: what it was heard as stands
                    src.heard_first = None
        fuse = self.ing.pools["fuse"]
        size = self.ing.operators["fuse"].batch_size
        decoding = any(s.decoding for s in self.active)
        while self.fuse_buffer and fuse.has_free() and (len(self.fuse_buffer) >= size or final or not decoding
                                                        or len(self.inflight) < 2 or not self.fused):
            batch, self.fuse_buffer = self.fuse_buffer[:size], self.fuse_buffer[size:]
            self.fused = True
            self.inflight[fuse.submit("fuse", [obs for _, obs in batch])] = ("fuse", [sid for sid, _ in batch])
            sent += 1
        return sent

    def _hear_in_context(self, src: SourceState, batch: list, earlier: int) -> list:
        """A file's first segment goes to Whisper alone (the first moment is searchable sooner),
        then again at the head of the second batch, which so hears the same minute as it would have
        without the first one: a phrase begun in the first 2 s is heard whole, and the segment is
        rewritten with it (heard alone, "Welcome to the city tour" came out cut short)."""
        if earlier == 0 and src.decoding and (seg := self.segs.get(batch[0][0])) is not None:
            seg.provisional, src.heard_first = True, batch[0]
        elif earlier == 1 and src.heard_first:
            batch, src.heard_first = [src.heard_first, *batch], None
        return batch

    def _settle(self, sid: int) -> None:
        """A provisional segment's last hearing is in: it is done once no fuse batch holds it."""
        seg = self.segs.get(sid)
        if seg is not None:
            seg.provisional = False
            if seg.counted and not seg.fusing:
                self._done(sid)

    def _collect(self, ref: ray.ObjectRef) -> None:
        stage, sids = self.inflight.pop(ref)
        try:
            results, error = ray.get(ref), None
        except ray.exceptions.RayError as exc:
            results, error = None, exc
        self.ing.pools[stage].done(ref, actor_died=isinstance(error, ray.exceptions.RayActorError))
        if stage == "summary":
            done = self.summaries.pop(ref)
            if error is None:
                summary = results[0].to_json()
            else:  # the segments are indexed; there is just no summary
                log.warning("a summary failed: %s", error)
                summary = None
            if self.store_down_since is not None:
                self.deferred.append((done, summary))
                return
            try:
                done(summary)
            except ConnectionError as exc:
                self._store_lost(exc)
                self.deferred.append((done, summary))
            return
        if error is not None:
            self._retry_or_fail(sids, stage, f"{stage} failed: {error}")
            return
        if len(results) != len(sids):
            self._retry_or_fail(sids, stage, f"{stage} returned {len(results)} results for {len(sids)} segments")
            return
        if stage == "fuse":
            kept = [(sid, r) for sid, r in zip(sids, results) if sid != FORGOTTEN]
            if kept:
                self._write([sid for sid, _ in kept], [r for _, r in kept])
            return
        for sid, result in zip(sids, results):
            seg = self.segs.get(sid)
            if seg is None:
                continue
            if seg.provisional and stage == CONTEXT_STAGE and len(sids) > 1:  # heard again, in context
                seg.provisional, seg.results[stage] = False, result
                if seg.needs <= seg.results.keys():  # fused again if it was with what it was heard as alone
                    self._ready_to_fuse(sid)
                continue
            if stage in seg.results:  # heard alone, after its hearing in context: stale
                continue
            seg.results[stage] = result
            if seg.needs <= seg.results.keys():
                self._ready_to_fuse(sid)

    def _ready_to_fuse(self, sid: int) -> None:
        seg = self.segs[sid]
        seg.observations = Observations(segment_id=sid, source_id=seg.source.outcome.ref.source_id, span=seg.span,
                                        visual=seg.results.get("visual"), audio=seg.results.get("audio"),
                                        speech=seg.results.get("speech"), caption=seg.results.get("caption"),
                                        clip=seg.results.get("clip"))
        seg.fusing += 1
        self.fuse_buffer.append((sid, seg.observations))

    def _retry_or_fail(self, sids: list[int], stage: str, reason: str) -> None:
        """A batch failed at ``stage``: each of its segments goes back to that stage once more
        (alone in a later batch), and is given up after ``MAX_ATTEMPTS``."""
        given_up = []
        for sid in sids:
            seg = self.segs.get(sid)
            if seg is None:
                continue
            if stage in seg.results:  # heard in context already, or heard alone: that stands
                if seg.provisional:
                    self._settle(sid)
                continue
            seg.attempts[stage] = seg.attempts.get(stage, 1) + 1
            if seg.attempts[stage] > MAX_ATTEMPTS:
                given_up.append(sid)
            elif stage == "fuse":
                self.fuse_buffer.append((sid, seg.observations))
            else:
                seg.source.buffers[stage].append((sid, seg.ref))
        if len(given_up) < len(sids):
            log.warning("%s; trying its segments again", reason)
        self._give_up(given_up, reason)

    def _give_up(self, sids: list[int], reason: str) -> None:
        """Drop these segments, counted; their sources fail with ``reason`` (the first reason wins)."""
        for sid in sids:
            seg = self.segs.pop(sid, None)
            if seg is None:
                continue
            seg.source.unfinished -= 1
            outcome = seg.source.outcome
            outcome.segments_failed += 1
            outcome.error = outcome.error or f"{outcome.ref.uri}: {reason}"
            log.error("%s: segment %.1f-%.1f s not indexed: %s", outcome.ref.name, seg.span.start_seconds,
                      seg.span.end_seconds, reason)

    def _write(self, sids: list[int], records: list) -> None:
        records = [replace(r, thumbnail_jpeg=seg.thumbnail_jpeg) if (seg := self.segs.get(sid)) else r
                   for sid, r in zip(sids, records)]
        if self.store_down_since is not None:
            self.unwritten.append((sids, records))
            return
        try:
            self.index.upsert(records)
        except ConnectionError as exc:  # the whole batch waits (an upsert is idempotent: resending it is safe)
            self._store_lost(exc)
            self.unwritten.append((sids, records))
            return
        except (ValueError, sqlite3.Error):
            # A fuse batch can mix sources: write one by one, so a bad record fails its source only.
            good = []
            for sid, record in zip(sids, records):
                try:
                    self.index.upsert([record])
                    good.append(sid)
                except (ValueError, sqlite3.Error) as exc:
                    self._give_up([sid], f"could not index segment at {record.span!r}: {exc}")
            sids = good
        for sid in sids:
            seg = self.segs.get(sid)
            if seg is None:
                continue
            seg.fusing = max(0, seg.fusing - 1)
            if not seg.counted:
                seg.counted = True
                seg.source.outcome.segments_indexed += 1
                if seg.source.outcome.ref.given_name is None:  # a file: what it replaces is what this run did not write
                    seg.source.written.add(sid)
                self.segments_done += 1
                self.media_ns_done += seg.span.duration_ns
            if not seg.provisional and not seg.fusing:
                self._done(sid)
        if self.on_progress:
            self.on_progress(self.segments_done, self.media_ns_done / 1e9)

    def _done(self, sid: int) -> None:
        self.segs.pop(sid).source.unfinished -= 1

    # -- the end of a source ---------------------------------------------------------------------

    def _finish_sources(self) -> None:
        for src in list(self.active):
            if src.decoding or src.unfinished or src.analysing:
                continue
            outcome = src.outcome
            if outcome.error is None and outcome.report is None:
                outcome.error = f"{outcome.ref.uri}: decoder ended without a report"
            if outcome.report is None or not outcome.segments_indexed:
                self._retire(src)
                continue
            if self.kind.live:  # everything it gave is written (committed: durable): say so
                self.index.save(only_if_due=True)
                if (durable_ns := self._durable_ns(src)) is not None:
                    self.kind.durable(outcome, durable_ns, final=True)
            if self.outputs is not None:  # the last highlight event goes out before the summary
                self.outputs.score(outcome, src.shot_results, None, final=True)
            if outcome.error is None and outcome.ref.given_name is None:  # a file, whole: it replaces what it was
                self._replace_earlier(src)
            self._analyse(src)

    def _replace_earlier(self, src: SourceState) -> None:
        """A file ingested again replaces its earlier versions, once it is all indexed: segments of
        its source this run did not write (another ``--window``), and sources ingested earlier from
        the same path (the file was edited: another fingerprint). A run that fails keeps them."""
        index, ref = self.index, src.outcome.ref
        index.delete_segments([s.segment_id for s in index.store.segments_of_source(ref.source_id)
                               if s.segment_id not in src.written])
        for other in index.store.list_sources():
            if other.uri == ref.uri and other.source_id != ref.source_id:
                log.info("%s: replacing the earlier version (source %s)", ref.uri, other.source_id)
                index.delete_source(other.source_id)

    def _analyse(self, src: SourceState) -> None:
        """Shots, highlight scores and the summary of a source whose segments are all indexed
        (``source_analysis``). The scores are computed here (cheap, in time order); the summary is
        written by the ``summary`` stage, which holds the text encoder (and the vlm's model)."""
        source_id = src.outcome.ref.source_id
        store = self.index.store
        cuts, scores, item = source_analysis(store, source_id, src.outcome.ref.name, src.first_start_ns or 0,
                                             src.shot_results)

        def store_analysis(summary: dict | None) -> None:
            store.put_analysis(source_id, cuts=cuts, scores=scores, summary=summary)
            self._retire(src)

        src.analysing = True
        self.summarise(item, store_analysis)

    def summarise(self, item: SummaryInput, done: Callable[[dict | None], None]) -> None:
        """Have the ``summary`` stage write ``item``'s summary; ``done`` gets it (None if it failed)."""
        ref = self.ing.pools["summary"].submit("summary", [item])
        self.inflight[ref] = ("summary", [])
        self.summaries[ref] = done

    def _retire(self, src: SourceState) -> None:
        self.active.remove(src)
        self.kind.release(src.outcome)
        outcome, report = src.outcome, src.outcome.report
        if report is not None and outcome.segments_indexed:
            self.index.add_source(SourceInfo(
                source_id=outcome.ref.source_id, uri=outcome.ref.uri, name=outcome.ref.name,
                has_video=report.has_video, has_audio=report.has_audio, duration_ns=report.duration_ns,
                status="failed" if outcome.error else "done", error=outcome.error,
                ingested_at_ns=report.anchor_wall_ns or time.time_ns()))

