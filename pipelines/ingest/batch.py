"""Batch ingest: the encoder pools, and files as a source kind of the one driver.

``Ingestor`` holds one actor pool per stage (or per group of stages sharing a process), sized
from what the operators declare; ``ingest`` runs the driver (``pipelines.ingest.driver``) over
``FileSources``: a few ``SourceActor``s decoding files one after another, a file that cannot be
read failing alone. Live streams and Kafka topics are other source kinds on the same pools
(``pipelines.live.cameras``, ``pipelines.kafka.topic``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Literal, Mapping

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from indexers.index import SegmentIndex
from indexers.store import SourceInfo
from operators.models.audio_events import AudioEventEncoder
from operators.base import Device, Operator, Resources
from operators.models.clip import ClipEncoder
from operators.media.decode import DecodeConfig
from operators.analysis.fuse import Fuse
from operators.records import NS_PER_SECOND, Segment, seconds_to_ns
from operators.models.speech import SpeechRecognizer
from operators.analysis.summary import Summariser
from operators.models.visual import VisualEncoder
from operators.models.vlm import Captioner
from pipelines.ingest.driver import Driver
from pipelines.ingest.kinds import Progress, SourceKind, SourceOutcome
from pipelines.ingest.profiles import ClipProfile, Offline, Profile, VlmProfile
from pipelines.ingest.runtime import SourceActor, StagePool, cluster_cpus, pool_size
from pipelines.ingest.sources import SourceRef

log = logging.getLogger(__name__)


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
    s3_endpoint: str | None = None
    """``s3://`` sources: an S3-compatible store's URL (None: AWS, or what boto3 reads from the environment)."""
    colocate: tuple[tuple[str, ...], ...] | None = None
    """Stages whose operators share one actor process. On CUDA the frame and text encoders both
    run on torch, whose runtime alone is ~500 MB resident: together they cost it once (on the
    CPU both run on onnxruntime, and one process still loads it once). The summariser
    shares the fuser's text encoder, or, with a vlm, the captioner's model. The sound event
    tagger (onnxruntime too) joins them, and Whisper has the other process: the two then cost
    about the same CPU, where the tagger beside Whisper left that one last to finish every
    file, with the other core idle (triage of the camera-like file: 6.9 against 7.5 s steady,
    mean of 5 pairs, bench/ingest.py). A third process was ~170 MB more at the peak. None:
    that default."""

    @property
    def groups(self) -> tuple[tuple[str, ...], ...]:
        if self.colocate is not None:
            return self.colocate
        if isinstance(self.profile, VlmProfile):
            return (("visual", "fuse"), ("caption", "summary"))
        return (("visual", "audio", "fuse", "summary", "clip"), ("speech",))

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
        ops["speech"] = SpeechRecognizer(model=config.speech_model, device=config.device)
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
class IngestResult:
    outcomes: list[SourceOutcome]
    segments: int
    media_seconds: float
    wall_seconds: float

    @property
    def failed(self) -> list[SourceOutcome]:
        return [o for o in self.outcomes if o.error]


class Ingestor:
    """Holds the actor pools; ``ingest`` may be called many times (the demo, the benchmark), and
    ``run`` drives any source kind over the same pools."""

    def __init__(self, index: SegmentIndex, config: IngestConfig = IngestConfig(), *, expected_sources: int = 0) -> None:
        """``expected_sources``: how many files the first ``ingest`` will get, if known; no more
        file decoders than that are started (each is a process of its own)."""
        self.index = index
        self._expected_sources = expected_sources or config.max_sources_in_flight
        self.config = config
        self.operators = build_operators(config)
        self.pools: dict[str, StagePool] = {}
        self.files: FileSources | None = None
        self.setup_seconds: dict[str, float] = {}
        self.started_on: dict[str, list[str]] = {}
        """Where each pool's workers were when they were all ready (``placement``)."""

    def start(self, kind: SourceKind | None = None) -> float:
        """Create every actor, the source kind's readers too (default: file decoders), and wait
        until each model is loaded. Returns the seconds it took."""
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
        # Readers first: a file's decoder must run on the driver's node, so it takes its room
        # there before the encoders, which may go anywhere, are spread over the nodes.
        if kind is None:
            decoders = min(self.config.max_sources_in_flight, max(1, self._expected_sources))
            kind = self.files = FileSources(self.config, decoders)
        readers = kind.start(source_cpus)
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
        try:
            for pool in self._unique_pools():
                self.setup_seconds.update(pool.wait_ready(timeout_s=STARTUP_TIMEOUT_S))
            ray.get(readers, timeout=STARTUP_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(f"workers were not ready after {STARTUP_TIMEOUT_S} s: the Ray cluster may lack the "
                               f"CPUs, GPUs or memory they reserve ({ray.available_resources()} available)") from None
        except ray.exceptions.RayError as exc:  # a model that failed to load says why
            raise RuntimeError(f"a worker failed to start: {exc}") from exc
        self.started_on = self.placement()
        log.info("workers by node: %s", json.dumps(self.started_on))
        return time.perf_counter() - started

    def placement(self) -> dict[str, list[str]]:
        """The ids of the Ray nodes each pool's workers run on (the file decoders as "decode")."""
        pools = {"+".join(pool.stages): pool.actors for pool in self._unique_pools()}
        if self.files is not None:
            pools["decode"] = self.files.free + list(self.files.reading.values())
        return {name: sorted(set(ray.get([a.node.remote() for a in actors], timeout=60))) for name, actors in pools.items()}

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
        if self.files is not None:
            self.files.close()

    def run(self, kind: SourceKind, *, stop: threading.Event | None = None, outputs=None,
            on_progress: Progress | None = None) -> Driver:
        """Drive ``kind`` until it has nothing more (a live kind: until ``stop`` is set)."""
        driver = Driver(self, kind, stop=stop, outputs=outputs, on_progress=on_progress)
        driver.go()
        return driver

    def ingest(self, refs: list[SourceRef], *, force: bool = False, on_progress: Progress | None = None) -> IngestResult:
        """Index these files (those already done are skipped unless ``force``)."""
        if not self.pools:
            self.start()
        started = time.perf_counter()
        outcomes: list[SourceOutcome] = []
        todo: list[SourceOutcome] = []
        for ref in refs:
            outcome = SourceOutcome(ref)
            outcomes.append(outcome)
            known = self.index.store.get_source(ref.source_id)
            if not force and known is not None and known.status == "done":
                outcome.skipped = True
                continue
            if known is None and ref.given_name is None:  # its row before its first segment: a run cut short leaves none orphaned
                self.index.add_source(SourceInfo(ref.source_id, ref.uri, ref.name, has_video=False, has_audio=False))
            todo.append(outcome)
        self.files.queue.extend(todo)
        driver = self.run(self.files, on_progress=on_progress)
        return IngestResult(outcomes, driver.segments_done, driver.media_ns_done / NS_PER_SECOND, time.perf_counter() - started)


class FileSources:
    """Files and URLs as a source kind: at most ``decoders`` ``SourceActor``s, each decoding one
    source at a time from ``queue``; a source's generator blocks when the driver has enough in
    flight. Where a decoder runs follows what it reads: a local file on the driver's node (the
    path is the driver's), an ``http(s)://`` or ``s3://`` source on any node (S3 objects through a
    presigned URL, so that node needs no credentials).

    A decoder that crashes (a codec segfault, out of memory) is replaced for the next source, and
    that source fails alone: it would crash the new one too. A decoder whose *node* was lost is
    replaced for the same source, which is read again from the first segment not yet indexed
    (``replays``: the segments the lost node held are read again)."""

    live = False
    replays = True

    def __init__(self, config: IngestConfig, decoders: int) -> None:
        self.config, self.decoders = config, decoders
        self.window_ns = seconds_to_ns(config.window_seconds)
        self.queue: deque[SourceOutcome] = deque()
        self.free: list = []
        self.reading: dict[int, object] = {}  # id(outcome) -> its decoder
        self.nodes: dict[object, ray.ObjectRef] = {}  # decoder -> the id of the node it runs on
        self.local: dict[object, bool] = {}  # decoder -> pinned to the driver's node
        self.resume: dict[int, int] = {}  # id(outcome) -> stream time its next reader starts at
        self._cpus = SOURCE_ACTOR_CPUS
        self._driver_node: str | None = None
        self._driver_cpus = 0.0

    def _decoder(self, *, local: bool):
        if local:
            strategy = NodeAffinitySchedulingStrategy(self._driver_node, soft=False)
            cpus = self._cpus if self._driver_cpus >= self._cpus * self.decoders else 0.0
        else:
            strategy, cpus = "SPREAD", self._cpus
        actor = SourceActor.options(num_cpus=cpus, scheduling_strategy=strategy).remote()
        self.nodes[actor] = actor.node.remote()
        self.local[actor] = local
        return actor

    def _retire(self, actor) -> None:
        self.nodes.pop(actor, None)
        self.local.pop(actor, None)
        ray.kill(actor)

    def start(self, cpus: float) -> list[ray.ObjectRef]:
        self._cpus = cpus
        self._driver_node = ray.get_runtime_context().get_node_id()
        # A driver's node with no CPUs to give (a KubeRay head started with num-cpus 0) still reads
        # its own files: its decoders then reserve none rather than wait for ever.
        self._driver_cpus = next((n["Resources"].get("CPU", 0.0) for n in ray.nodes()
                                  if n["NodeID"] == self._driver_node), 0.0)
        self.free = [self._decoder(local=True) for _ in range(self.decoders)]
        return [a.pid.remote() for a in self.free]

    def take(self) -> list[SourceOutcome]:
        taken = []
        while self.queue and self.free:
            outcome = self.queue.popleft()
            local = "://" not in outcome.ref.uri
            actor = next((a for a in self.free if self.local[a] == local), None)
            if actor is None:  # a decoder of the other placement is free: replace it with one of this one
                self._retire(self.free.pop())
                actor = self._decoder(local=local)
            else:
                self.free.remove(actor)
            self.reading[id(outcome)] = actor
            taken.append(outcome)
        return taken

    def pending(self) -> bool:
        return bool(self.queue)

    def open(self, outcome: SourceOutcome):
        from operators.media.s3 import readable_url

        actor, uri = self.reading[id(outcome)], outcome.ref.uri
        return actor.segments.remote(readable_url(uri, endpoint=self.config.s3_endpoint), outcome.ref.source_id,
                                     self.config.decode, self.window_ns, shown=uri,
                                     skip_before_ns=self.resume.get(id(outcome), 0))

    def reopen(self, outcome: SourceOutcome, resume_after_ns: int):
        dead = self.reading[id(outcome)]
        lost_node = not _node_alive(self.nodes.get(dead))
        local = self.local.get(dead, True)
        self._retire(dead)
        self.reading[id(outcome)] = self._decoder(local=local)  # the same source, or the next one, gets a live one
        if not lost_node:
            return None
        self.resume[id(outcome)] = resume_after_ns
        return self.open(outcome)

    def on_segment(self, outcome: SourceOutcome, segment: Segment) -> None:
        pass

    def durable(self, outcome: SourceOutcome, t_ns: int, *, final: bool = False) -> None:
        pass

    def release(self, outcome: SourceOutcome) -> None:
        self.resume.pop(id(outcome), None)
        self.free.append(self.reading.pop(id(outcome)))

    def status(self, outcome: SourceOutcome) -> dict | None:
        return None

    def stop(self) -> None:
        pass

    def close(self) -> None:
        for actor in self.free + list(self.reading.values()):
            ray.kill(actor)


def _node_alive(node_ref: ray.ObjectRef | None) -> bool:
    """Whether the node an actor ran on is still in the cluster (unknown: assumed alive)."""
    if node_ref is None:
        return True
    try:
        node_id = ray.get(node_ref, timeout=5)
    except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
        return True
    return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())
