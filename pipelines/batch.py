"""Batch ingest: sources -> decode+align -> encoders (in parallel) -> fuse -> index.

The driver owns the flow: it pulls segments from each source's streaming generator while fewer
than ``max_segments_in_flight`` are unfinished, sends each segment's ref to every encoder that
applies (frames to ``visual``; audio to ``audio`` and ``speech``), batches consecutive segments of
one source per stage, joins the results into ``Observations`` for ``fuse``, and upserts the fused
records. A source that fails (unreadable, crashed encoder) fails alone; the others go on.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Mapping

import ray

from indexers.index import SegmentIndex
from indexers.store import SourceInfo, StoredSegment
from operators.audio_events import AudioEventEncoder
from operators.base import Device, Operator, Resources
from operators.clip import ClipEncoder
from operators.decode import DecodeConfig
from operators.fuse import Fuse, Observations
from operators.highlights import HighlightScorer, Signals, merge_highlights
from operators.records import NS_PER_SECOND, Segment, Span, seconds_to_ns
from operators.shots import ShotDetector, ShotResult
from operators.speech import SpeechRecognizer
from operators.summary import SegmentFacts, Summariser, SummaryInput
from operators.visual import VisualEncoder
from operators.vlm import Captioner
from pipelines.profiles import ClipProfile, Offline, Profile, VlmProfile
from pipelines.runtime import SourceActor, SourceReport, StagePool, cluster_cpus, pool_size
from pipelines.sources import SourceRef

log = logging.getLogger(__name__)

ENCODERS = ("visual", "audio", "speech", "clip", "caption")
PICTURE_STAGES = ("visual", "clip")
SOUND_STAGES = ("audio", "speech")
DEFAULT_MIN_SCORE = 0.3
"""Highlight score a moment needs by default (``vidscope highlights --min-score``). On
bench/quality.py's test split it keeps 23 of 24 sound events, 92% of highlights being one."""


@dataclass(frozen=True, slots=True)
class StageOverride:
    """Per-stage overrides of what the operator declares (config file / CLI)."""

    cpus: float | None = None
    gpus: float | None = None
    batch_size: int | None = None
    workers: int | None = None


MIN_WINDOW_S, MAX_WINDOW_S = 0.5, 60.0
"""Segment length: shorter than half a second hears no sound whole; longer than a minute
finds nothing more precisely than a minute."""


@dataclass(frozen=True, slots=True)
class IngestConfig:
    decode: DecodeConfig = DecodeConfig()
    window_seconds: float = 2.0
    speech: bool = True
    speech_model: Literal["tiny.en", "base"] = "tiny.en"
    device: Device = "auto"
    max_sources_in_flight: int = 2
    """Files decoded at once; each has its own source actor."""
    max_segments_in_flight: int = 64
    """Segments decoded but not yet indexed; bounds memory whatever the input length."""
    stages: Mapping[str, StageOverride] = field(default_factory=dict)
    profile: Profile = Offline()
    colocate: tuple[tuple[str, ...], ...] | None = None
    """Stages whose operators share one actor process. The frame and text encoders both run on
    torch, whose runtime alone is ~500 MB resident: together they cost it once. The summariser
    shares the fuser's text encoder, or, with a vlm, the captioner's model. None: that default."""

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        if self.colocate is not None:
            return self.colocate
        if isinstance(self.profile, VlmProfile):
            return (("visual", "fuse"), ("caption", "summary"))
        return (("visual", "fuse", "summary", "clip"),)

    def __post_init__(self) -> None:
        if not MIN_WINDOW_S <= self.window_seconds <= MAX_WINDOW_S:
            raise ValueError(f"the window must be {MIN_WINDOW_S:g} to {MAX_WINDOW_S:g} s, got {self.window_seconds:g} s")
        if self.max_sources_in_flight < 1 or self.max_segments_in_flight < 1:
            raise ValueError("in-flight limits must be at least 1")


def build_operators(config: IngestConfig) -> dict[str, Operator]:
    """The stages of the config's profile (the offline encoders, plus CLIP or the vlm captioner),
    the summariser, and the config's overrides applied."""
    fuse = Fuse(device=config.device, batch_size=16)
    ops: dict[str, Operator] = {
        "visual": VisualEncoder(device=config.device, batch_size=8),
        "audio": AudioEventEncoder(batch_size=16),
        "fuse": fuse,
    }
    if config.speech:
        ops["speech"] = SpeechRecognizer(model=config.speech_model, device=config.device, batch_size=15)
    profile = config.profile
    if isinstance(profile, ClipProfile):
        ops["clip"] = ClipEncoder(profile.clip)
    if isinstance(profile, VlmProfile):
        ops["caption"] = Captioner(profile.vlm)
        ops["summary"] = Summariser(vlm=profile.vlm, resources=Resources(cpus=0.1, memory_mb=512))
    else:  # one MiniLM in the process for both: pickled together, the instance stays shared
        ops["summary"] = Summariser(text_encoder=fuse.text_encoder)
    for name, op in ops.items():
        o = config.stages.get(name)
        if o is None:
            continue
        if o.cpus is not None or o.gpus is not None:
            op.resources = replace(op.resources, **{k: v for k, v in (("cpus", o.cpus), ("gpus", o.gpus)) if v is not None})
        if o.batch_size is not None:
            op.batch_size = o.batch_size
    return ops


SOURCE_ACTOR_CPUS = 0.5
STARTUP_TIMEOUT_S = 300
GPU_STAGES = ("visual", "speech", "fuse", "clip", "caption")
GPU_SHARE = 0.25
"""Each GPU stage reserves a quarter of a device: a profile runs at most four GPU stages (visual,
speech, fuse, and clip or caption), so one replica of them fits on one GPU."""


def required_cpus(operators: Mapping[str, Operator], config: IngestConfig) -> float:
    """Logical CPUs one replica of every stage reserves. A local Ray gets at least this many so
    that no actor waits forever for a CPU another one holds (FACTS.md: Ray starves on 2 cores)."""
    return sum(op.resources.cpus for op in operators.values()) + SOURCE_ACTOR_CPUS * config.max_sources_in_flight


def local_ray_cpus(config: IngestConfig) -> int:
    """Logical CPUs for a local Ray: the machine's cores, or one set of stages if that is more."""
    return max(os.cpu_count() or 1, math.ceil(required_cpus(build_operators(config), config)))


@dataclass(slots=True)
class SourceOutcome:
    ref: SourceRef
    error: str | None = None
    report: SourceReport | None = None
    segments_indexed: int = 0
    skipped: bool = False


@dataclass(slots=True)
class IngestResult:
    outcomes: list[SourceOutcome]
    segments: int
    media_seconds: float
    wall_seconds: float

    @property
    def failed(self) -> list[SourceOutcome]:
        return [o for o in self.outcomes if o.error]


Progress = Callable[[int, float], None]
"""Called with (segments indexed so far, media seconds indexed so far)."""


@dataclass(slots=True)
class _Seg:
    source: "_Source"
    ref: ray.ObjectRef
    span: Span
    needs: set[str]
    results: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class _Source:
    outcome: SourceOutcome
    actor: object
    gen: object
    decoding: bool = True
    unfinished: int = 0
    buffers: dict[str, list[tuple[int, object]]] = field(default_factory=dict)
    shots: ShotDetector = field(default_factory=ShotDetector)
    shot_results: list[ShotResult] = field(default_factory=list)
    analysis: tuple | None = None  # (cuts, highlight scores) while its summary is being written
    written: set[int] = field(default_factory=set)  # ids of the segments this run indexed


class Ingestor:
    """Holds the actor pools; ``ingest`` may be called many times (the demo, the benchmark)."""

    def __init__(self, index: SegmentIndex, config: IngestConfig = IngestConfig(), *, expected_sources: int = 0) -> None:
        """``expected_sources``: how many files the first ``ingest`` will get, if known; no more
        source actors than that are started (each is a process of its own)."""
        self.index = index
        self._expected_sources = expected_sources or config.max_sources_in_flight
        self.config = config
        self.operators = build_operators(config)
        self.pools: dict[str, StagePool] = {}
        self.source_actors: list = []
        self.setup_seconds: dict[str, float] = {}

    def start(self) -> float:
        """Create every actor and wait until its model is loaded. Returns the seconds it took."""
        started = time.perf_counter()
        total = cluster_cpus()
        cluster_gpus = float(ray.cluster_resources().get("GPU", 0.0))
        self._place_on_gpus(cluster_gpus)
        all_cpus = required_cpus(self.operators, self.config)
        source_cpus = SOURCE_ACTOR_CPUS
        if all_cpus > total:  # a small cluster: shrink every reservation alike rather than wait forever
            factor = total / all_cpus
            log.warning("the Ray cluster has %.1f CPUs and one replica of the stages asks for %.2f: "
                        "reserving %.0f%% of each stage's declared CPUs", total, all_cpus, factor * 100)
            for op in self.operators.values():
                op.resources = replace(op.resources, cpus=op.resources.cpus * factor)
            source_cpus *= factor
            all_cpus = total
        for group in self._groups():
            ops = {name: self.operators[name] for name in group}
            override = [self.config.stages[n].workers for n in group if n in self.config.stages and self.config.stages[n].workers]
            workers = max(override) if override else pool_size(total, all_cpus)
            if any(op.resources.gpus for op in ops.values()) and not override:
                # One replica of the GPU stages per whole set of shares that the GPUs hold.
                workers = min(workers, max(1, int(cluster_gpus // max(self._gpu_share_total(), 1e-9))))
            pool = StagePool.create(ops, workers=workers)
            for name in group:
                self.pools[name] = pool
        sources = min(self.config.max_sources_in_flight, max(1, self._expected_sources))
        self._source_cpus = source_cpus
        self.source_actors = [self._new_source_actor(source_cpus) for _ in range(sources)]
        try:
            for pool in self._unique_pools():
                self.setup_seconds.update(pool.wait_ready(timeout_s=STARTUP_TIMEOUT_S))
            ray.get([a.pid.remote() for a in self.source_actors], timeout=STARTUP_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(f"workers were not ready after {STARTUP_TIMEOUT_S} s: the Ray cluster may lack the "
                               f"CPUs, GPUs or memory they reserve ({ray.available_resources()} available)") from None
        except ray.exceptions.RayError as exc:  # a model that failed to load says why
            raise RuntimeError(f"a worker failed to start: {exc}") from exc
        return time.perf_counter() - started

    def _place_on_gpus(self, cluster_gpus: float) -> None:
        """Give the torch/CTranslate2 stages a share of a GPU when the cluster has one. Ray hides
        GPUs from actors that reserve none, so without a share they run on CPU even on a GPU host."""
        if self.config.device == "cpu":
            return
        if cluster_gpus <= 0:
            if self.config.device == "cuda":
                raise ValueError("--device cuda, but the Ray cluster has no GPU")
            return
        for name in GPU_STAGES:
            op = self.operators.get(name)
            override = self.config.stages.get(name)
            if op is not None and not (override and override.gpus is not None):
                op.resources = replace(op.resources, gpus=GPU_SHARE)

    def _gpu_share_total(self) -> float:
        return sum(op.resources.gpus for op in self.operators.values())

    def replace_source_actor(self, dead) -> object:
        """A source actor that died (a decoder crash, out of memory) is replaced, not reused."""
        fresh = self._new_source_actor(self._source_cpus)
        self.source_actors = [fresh if a is dead else a for a in self.source_actors]
        return fresh

    def _new_source_actor(self, cpus: float):
        """A file decoder; the live pipeline starts stream readers instead."""
        return SourceActor.options(num_cpus=cpus).remote()

    def _groups(self) -> list[tuple[str, ...]]:
        grouped = [tuple(n for n in group if n in self.operators) for group in self.config.groups]
        grouped = [g for g in grouped if g]
        taken = {n for g in grouped for n in g}
        return grouped + [(n,) for n in self.operators if n not in taken]

    def _unique_pools(self) -> list[StagePool]:
        return list({id(p): p for p in self.pools.values()}.values())

    def close(self) -> None:
        for pool in self._unique_pools():
            pool.kill()
        for actor in self.source_actors:
            ray.kill(actor)

    def _run(self, on_progress: Progress | None) -> _Run:
        return _Run(self, on_progress)

    def ingest(self, refs: list[SourceRef], *, force: bool = False, on_progress: Progress | None = None) -> IngestResult:
        if not self.pools:
            self.start()
        started = time.perf_counter()
        outcomes: list[SourceOutcome] = []
        queue: deque[SourceOutcome] = deque()
        for ref in refs:
            outcome = SourceOutcome(ref)
            outcomes.append(outcome)
            known = self.index.store.get_source(ref.source_id)
            if not force and known is not None and known.status == "done":
                outcome.skipped = True
            else:
                if known is None and ref.given_name is None:  # its row before its first segment: a run cut short leaves none orphaned
                    self.index.add_source(SourceInfo(ref.source_id, ref.uri, ref.name, has_video=False, has_audio=False))
                queue.append(outcome)
        run = self._run(on_progress)
        run.go(queue)
        return IngestResult(outcomes, run.segments_done, run.media_ns_done / NS_PER_SECOND, time.perf_counter() - started)


class _Run:
    """One ingest call's event loop. ``tick`` runs once per turn (the live pipeline saves, reports
    status and stops streams there)."""

    def __init__(self, ingestor: Ingestor, on_progress: Progress | None) -> None:
        self.ing = ingestor
        self.window_ns = seconds_to_ns(ingestor.config.window_seconds)
        self.on_progress = on_progress
        self.inflight: dict[ray.ObjectRef, tuple[str, list[int]]] = {}
        self.segs: dict[int, _Seg] = {}
        self.active: list[_Source] = []
        self.free_actors = list(ingestor.source_actors)
        self.fuse_buffer: list[tuple[int, Observations]] = []
        self.summaries: dict[ray.ObjectRef, _Source] = {}
        self.segments_done = 0
        self.media_ns_done = 0

    def tick(self) -> None:
        pass

    def keep_running(self) -> bool:
        """Go on with nothing to do (a live topic waits for its streams)."""
        return False

    def _on_segment(self, src: _Source, segment: Segment) -> None:
        """Each segment as it is pulled, in its source's time order."""

    def go(self, queue: deque[SourceOutcome]) -> None:
        while queue or self.active or self.inflight or self.keep_running():
            self.tick()
            while queue and self.free_actors:
                self._start(queue.popleft())
            waitables = list(self.inflight)
            if len(self.segs) < self.ing.config.max_segments_in_flight:
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
            # Partial batches wait for more segments (a Whisper call costs the same for 2 s as for
            # 30 s), unless the in-flight limit is what stops more from coming.
            gated = len(self.segs) >= self.ing.config.max_segments_in_flight
            self._dispatch(final=gated and not self.inflight)
            self._finish_sources()

    def _start(self, outcome: SourceOutcome) -> None:
        actor = self.free_actors.pop()
        gen = self._segments(actor, outcome)
        stages = {name: [] for name in self.ing.pools if name in ENCODERS}
        self.active.append(_Source(outcome, actor, gen, buffers=stages))

    def _segments(self, actor, outcome: SourceOutcome):
        """The source's streaming generator of segments, ending with a ``SourceReport``."""
        return actor.segments.remote(outcome.ref.uri, outcome.ref.source_id, self.ing.config.decode, self.window_ns)

    def _pull(self, src: _Source) -> None:
        try:
            ref = next(src.gen)
            item = ray.get(ref)
        except StopIteration:
            src.decoding = False
            return
        except ray.exceptions.RayError as exc:
            src.decoding = False
            src.outcome.error = f"{src.outcome.ref.uri}: decoder crashed: {exc}"
            src.actor = self.ing.replace_source_actor(src.actor)  # the next file gets a live one
            return
        if isinstance(item, SourceReport):
            src.outcome.report = item
            if item.error:
                src.outcome.error = item.error
            src.decoding = False
            return
        segment: Segment = item
        self._on_segment(src, segment)
        src.shot_results += src.shots.process([segment])  # in order: a source's segments arrive in time order
        needs = set()
        if len(segment.frames):
            needs.update(PICTURE_STAGES)
        if segment.audio is not None:
            needs.update(SOUND_STAGES)
        if len(segment.frames) or segment.audio is not None:
            needs.add("caption")
        needs &= self.ing.pools.keys()
        sid = segment.id
        seg = _Seg(src, ref, segment.span, needs)
        self.segs[sid] = seg
        src.unfinished += 1
        for stage in needs:
            src.buffers[stage].append((sid, ref))
        if not needs:
            self._ready_to_fuse(sid)

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
                while buf and pool.has_free() and (len(buf) >= batch_size or flush):
                    batch, src.buffers[stage] = buf[:batch_size], buf[batch_size:]
                    buf = src.buffers[stage]
                    self.inflight[pool.submit(stage, [r for _, r in batch])] = (stage, [sid for sid, _ in batch])
                    sent += 1
        fuse = self.ing.pools["fuse"]
        size = self.ing.operators["fuse"].batch_size
        decoding = any(s.decoding for s in self.active)
        while self.fuse_buffer and fuse.has_free() and (len(self.fuse_buffer) >= size or final or not decoding
                                                        or len(self.inflight) < 2):
            batch, self.fuse_buffer = self.fuse_buffer[:size], self.fuse_buffer[size:]
            self.inflight[fuse.submit("fuse", [obs for _, obs in batch])] = ("fuse", [sid for sid, _ in batch])
            sent += 1
        return sent

    def _collect(self, ref: ray.ObjectRef) -> None:
        stage, sids = self.inflight.pop(ref)
        self.ing.pools[stage].done(ref)
        try:
            results = ray.get(ref)
        except ray.exceptions.RayError as exc:
            if stage == "summary":  # the segments are indexed; the source just has no summary
                log.warning("summary of %s failed: %s", self.summaries[ref].outcome.ref.uri, exc)
                self._store_analysis(self.summaries.pop(ref), None)
                return
            self._fail(sids, f"{stage} failed: {exc}")
            return
        if stage == "summary":
            self._store_analysis(self.summaries.pop(ref), results[0].to_json())
            return
        if len(results) != len(sids):
            self._fail(sids, f"{stage} returned {len(results)} results for {len(sids)} segments")
            return
        if stage == "fuse":
            self._write(sids, results)
            return
        for sid, result in zip(sids, results):
            seg = self.segs.get(sid)
            if seg is None:
                continue
            seg.results[stage] = result
            if seg.needs <= seg.results.keys():
                self._ready_to_fuse(sid)

    def _ready_to_fuse(self, sid: int) -> None:
        seg = self.segs[sid]
        seg.ref = None  # frames and audio are no longer needed: let the object store free them
        obs = Observations(segment_id=sid, source_id=seg.source.outcome.ref.source_id, span=seg.span,
                           visual=seg.results.get("visual"), audio=seg.results.get("audio"),
                           speech=seg.results.get("speech"), caption=seg.results.get("caption"),
                           clip=seg.results.get("clip"))
        self.fuse_buffer.append((sid, obs))

    def _fail(self, sids: list[int], reason: str) -> None:
        """Drop these segments; their sources fail with ``reason`` (the first reason wins)."""
        for sid in sids:
            seg = self.segs.pop(sid, None)
            if seg is not None:
                seg.source.unfinished -= 1
                outcome = seg.source.outcome
                outcome.error = outcome.error or f"{outcome.ref.uri}: {reason}"

    def _write(self, sids: list[int], records: list) -> None:
        try:
            self.ing.index.upsert(records)
        except (ValueError, sqlite3.Error):
            # A fuse batch can mix sources: write one by one, so a bad record fails its source only.
            good = []
            for sid, record in zip(sids, records):
                try:
                    self.ing.index.upsert([record])
                    good.append(sid)
                except (ValueError, sqlite3.Error) as exc:
                    self._fail([sid], f"could not index segment at {record.span!r}: {exc}")
            sids = good
        for sid in sids:
            seg = self.segs.pop(sid, None)
            if seg is None:
                continue
            seg.source.unfinished -= 1
            seg.source.outcome.segments_indexed += 1
            seg.source.written.add(sid)
            self.segments_done += 1
            self.media_ns_done += seg.span.duration_ns
        if self.on_progress:
            self.on_progress(self.segments_done, self.media_ns_done / NS_PER_SECOND)

    def _finish_sources(self) -> None:
        for src in list(self.active):
            if src.decoding or src.unfinished or src.analysis is not None:
                continue
            outcome = src.outcome
            if outcome.error is None and outcome.report is None:
                outcome.error = f"{outcome.ref.uri}: decoder ended without a report"
            if outcome.report is None or not outcome.segments_indexed:
                self._retire(src)
                continue
            if outcome.error is None and outcome.ref.given_name is None:  # a file, whole: it replaces what it was
                self._replace_earlier(src)
            self._analyse(src)

    def _replace_earlier(self, src: _Source) -> None:
        """A file ingested again replaces its earlier versions, once it is all indexed: segments of
        its source this run did not write (another ``--window``), and sources ingested earlier from
        the same path (the file was edited: another fingerprint). A run that fails keeps them."""
        index, ref = self.ing.index, src.outcome.ref
        index.delete_segments([s.segment_id for s in index.store.segments_of_source(ref.source_id)
                               if s.segment_id not in src.written])
        for other in index.store.list_sources():
            if other.uri == ref.uri and other.source_id != ref.source_id:
                log.info("%s: replacing the earlier version (source %s)", ref.uri, other.source_id)
                index.delete_source(other.source_id)

    def _analyse(self, src: _Source) -> None:
        """Shots, highlight scores and the summary of a source whose segments are all indexed.
        The scores are computed here (cheap, in time order); the summary is written by the
        ``summary`` stage, which holds the text encoder (and the vlm's model)."""
        source_id = src.outcome.ref.source_id
        stored = self.ing.index.store.segments_of_source(source_id)
        shots = {r.segment_id: r for r in src.shot_results}
        scorer = HighlightScorer()
        signals = [signals_of(s, shots.get(s.segment_id)) for s in stored]
        scores = scorer.process(signals) + scorer.flush()
        cuts = [(t, score) for r in src.shot_results for t, score in zip(r.cuts_ns, r.cut_scores)]
        src.analysis = (cuts, scores)
        item = SummaryInput(
            source_id=source_id, name=src.outcome.ref.name, duration_ns=max((s.end_ns for s in stored), default=0),
            segments=tuple(SegmentFacts(s.start_ns, s.end_ns, s.description, s.labels, s.events, s.transcript) for s in stored),
            cuts_ns=tuple(t for t, _ in cuts),
            highlights=tuple(merge_highlights(scores, [t for t, _ in cuts], min_score=DEFAULT_MIN_SCORE)))
        ref = self.ing.pools["summary"].submit("summary", [item])
        self.inflight[ref] = ("summary", [])
        self.summaries[ref] = src

    def _store_analysis(self, src: _Source, summary: dict | None) -> None:
        cuts, scores = src.analysis
        self.ing.index.store.put_analysis(src.outcome.ref.source_id, cuts=cuts, scores=scores, summary=summary)
        self._retire(src)

    def _retire(self, src: _Source) -> None:
        self.active.remove(src)
        self.free_actors.append(src.actor)
        outcome, report = src.outcome, src.outcome.report
        if report is not None and outcome.segments_indexed:
            self.ing.index.add_source(SourceInfo(
                source_id=outcome.ref.source_id, uri=outcome.ref.uri, name=outcome.ref.name,
                has_video=report.has_video, has_audio=report.has_audio, duration_ns=report.duration_ns,
                status="failed" if outcome.error else "done", error=outcome.error,
                ingested_at_ns=report.anchor_wall_ns or time.time_ns()))


def signals_of(segment: StoredSegment, shot: ShotResult | None) -> Signals:
    """What the highlight scorer reads of a stored segment and its shot result."""
    return Signals(segment.segment_id, segment.source_id, Span(segment.start_ns, segment.end_ns), segment.events,
                   segment.loudness_db, shot.motion if shot else 0.0, len(shot.cuts_ns) if shot else 0, segment.transcript,
                   segment.class_scores("audio"))
