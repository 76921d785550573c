"""Operators on Ray: one actor pool per stage, sized from declared resources, bounded in flight.

A stage is a pool of ``OperatorActor``s hosting one operator each (weights loaded once, in the
actor, by ``setup()``). Sources are ``SourceActor``s whose decode+align loop is a Ray streaming
generator with backpressure, so a fast decoder never floods the object store. Segments travel
as object refs: one ``put`` per segment, read zero-copy by every encoder that needs it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import ray

from operators.media.align import Aligner, windows
from operators.base import Operator, torch_threads
from operators.media.decode import DecodeConfig, Decoder, MediaError
from operators.records import Segment

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    ray_address: str | None = None
    """Join an existing cluster ("auto" or "ray://host:10001"); None starts a local one."""
    num_cpus: int | None = None
    """Logical CPUs of a local Ray; default: this machine's cores."""
    object_store_mb: int = 256
    """Object store cap of a local Ray. In-flight work is bounded (64 segments at 1080p, 1 frame/s,
    are ~45 MB), so this never fills; a larger store only lets every process that reads from it
    map more shared pages, which shows as resident memory growing with the length of the input."""


def start_ray(config: RuntimeConfig) -> None:
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Token authentication stays on (Ray's default); its notice on every start is only noise here.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING,
                                  configure_logging=True)
    if config.ray_address:
        ray.init(address=config.ray_address, **kwargs)
    else:
        # Every process of a local cluster inherits this: a fixed trim threshold turns off glibc's
        # dynamic mmap threshold, under which a freed buffer of a few MB (a batch's activations,
        # Whisper's features) stays in the heap for good. ~190 MB less at the peak of the two
        # encoder workers on the camera-like file, at no measured cost in speed (bench/ingest.py).
        os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(128 * 1024))
        # "local" starts a cluster of our own even when a `ray start` cluster runs on this machine
        # (a bare ray.init() would join that one instead, and refuse our CPU count).
        ray.init(address="local", num_cpus=config.num_cpus or os.cpu_count(),
                 object_store_memory=config.object_store_mb * 2**20, **kwargs)


def cluster_cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 1.0))


@ray.remote
class OperatorActor:
    """Hosts one or more operators: ``setup()`` for each on creation, then ``process`` per batch.

    Several operators in one actor share one process: two torch models side by side cost one
    torch runtime (~500 MB resident), not two. Calls run one at a time."""

    def __init__(self, operators: dict[str, Operator]) -> None:
        import numpy  # noqa: F401 - its OpenBLAS loaded, so that the limit below finds it
        from threadpoolctl import threadpool_limits

        self.operators = operators
        # Ray sets OMP_NUM_THREADS to the CPUs an actor reserves, the sum of its operators' (2 for
        # the frame encoder's group), and numpy's OpenBLAS busy-waits that many threads after
        # every product (a frame's resize, a mel filterbank): ~1.5 CPU-s per 3 minutes of video
        # taken from the other stages, for no speed-up. Calls run one at a time, so the widest
        # operator's threads are all the process needs.
        self._blas = threadpool_limits(max(torch_threads(op.resources) for op in operators.values()), user_api="blas")
        self.setup_seconds = {}
        for name, operator in operators.items():
            started = time.perf_counter()
            operator.setup()
            self.setup_seconds[name] = time.perf_counter() - started

    def ready(self) -> dict[str, float]:
        return self.setup_seconds

    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def process(self, stage: str, *items: Any) -> list[Any]:
        # Top-level object-ref arguments arrive resolved (numpy arrays zero-copy, read-only).
        return self.operators[stage].process(list(items))


@dataclass(slots=True)
class StagePool:
    """A pool of actors hosting the operators of one or more stages. ``submit`` picks the
    least-loaded actor; at most ``max_in_flight_per_actor`` batches queue on each, which bounds
    memory and keeps every actor busy while the driver collects results.

    Actors are spread over the cluster's nodes. One that died (its node lost, a crash) is left
    out until Ray has restarted it where there is room (its ``ready`` answers again): a batch
    sent to it meanwhile would wait, perhaps for ever if no node can hold it, while the others
    could have done the work."""

    stages: tuple[str, ...]
    actors: list[Any]
    max_in_flight_per_actor: int = 2
    _load: dict[int, int] = field(default_factory=dict)
    _owner: dict[Any, int] = field(default_factory=dict)
    _down: dict[int, Any] = field(default_factory=dict)  # actor index -> its pending ``ready`` probe

    @classmethod
    def create(cls, operators: dict[str, Operator], *, workers: int, max_in_flight_per_actor: int = 2) -> "StagePool":
        """One actor per worker, reserving the sum of what its operators declare."""
        cpus = sum(op.resources.cpus for op in operators.values())
        gpus = sum(op.resources.gpus for op in operators.values())
        memory = sum(op.resources.memory_mb for op in operators.values()) * 2**20
        # A crashed worker (out of memory, a segfault, its node lost) is restarted with its models;
        # the batch it held is not retried by Ray: the driver sends its segments again.
        actors = [OperatorActor.options(num_cpus=cpus, num_gpus=gpus, memory=memory, max_concurrency=1,
                                        max_restarts=3, max_task_retries=0, scheduling_strategy="SPREAD").remote(operators)
                  for _ in range(max(1, workers))]
        return cls(tuple(operators), actors, max_in_flight_per_actor, {i: 0 for i in range(len(actors))})

    def wait_ready(self, *, timeout_s: float | None = None) -> dict[str, float]:
        """Seconds each stage's set-up took, the slowest worker's."""
        out: dict[str, float] = {}
        for seconds in ray.get([a.ready.remote() for a in self.actors], timeout=timeout_s):
            for stage, s in seconds.items():
                out[stage] = max(out.get(stage, 0.0), s)
        return out

    def _up(self) -> list[int]:
        """Actors that can take work: those not down, and those back from a restart."""
        for index, probe in list(self._down.items()):
            if ray.wait([probe], timeout=0)[0]:
                try:
                    ray.get(probe)
                    del self._down[index]
                    log.warning("a %s worker is back", "/".join(self.stages))
                except ray.exceptions.RayError:  # died again while restarting: ask again
                    self._down[index] = self.actors[index].ready.remote()
        return [i for i in self._load if i not in self._down]

    def has_free(self) -> bool:
        return any(self._load[i] < self.max_in_flight_per_actor for i in self._up())

    def submit(self, stage: str, items: list[Any]) -> ray.ObjectRef:
        index = min(self._up() or self._load, key=self._load.__getitem__)
        ref = self.actors[index].process.remote(stage, *items)
        self._load[index] += 1
        self._owner[ref] = index
        return ref

    def done(self, ref: ray.ObjectRef, *, actor_died: bool = False) -> None:
        """``ref``'s batch is back (``actor_died``: it failed because its actor died)."""
        index = self._owner.pop(ref)
        self._load[index] -= 1
        if actor_died and index not in self._down:
            log.warning("a %s worker died; leaving it out until Ray has restarted it", "/".join(self.stages))
            self._down[index] = self.actors[index].ready.remote()

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor)


@dataclass(frozen=True, slots=True)
class SourceReport:
    """The last item a source yields: what was read, and why it failed if it did."""

    source_id: str
    path: str
    error: str | None
    duration_ns: int
    has_video: bool
    has_audio: bool
    segments: int
    damaged_packets: int
    frames_decoded: int
    decode_cpu_seconds: float
    anchor_wall_ns: int | None = None
    """Live streams: the wall-clock time of stream time 0 (a moment at t happened at anchor + t)."""


@ray.remote
class SourceActor:
    """Decodes and aligns sources one after another; each call streams its segments."""

    @ray.method(num_returns="streaming", _generator_backpressure_num_objects=16)
    def segments(self, path: str, source_id: str, decode: DecodeConfig, window_ns: int, *, shown: str | None = None,
                 skip_before_ns: int = 0) -> Iterator[Segment | SourceReport]:
        """``path`` is what FFmpeg opens (a presigned URL for an S3 object), ``shown`` what the
        user named, for messages; segments starting before ``skip_before_ns`` are read, not yielded
        (a reader taking over from one whose node was lost)."""
        cpu0 = time.process_time()
        count = 0
        opened, path = path, shown or path
        try:
            decoder = Decoder(opened, decode)
        except MediaError as exc:
            yield SourceReport(source_id, path, str(exc).replace(opened, path), 0, False, False, 0, 0, 0, 0.0)
            return
        error = None
        aligner = Aligner(source_id, has_video=decoder.has_video, has_audio=decoder.has_audio, window_ns=window_ns)
        last_end_ns = 0
        try:
            with decoder:
                for segment in windows(decoder, aligner, video_end_ns=lambda: decoder.video_end_ns):
                    count += 1
                    last_end_ns = segment.span.end_ns
                    if segment.span.start_ns >= skip_before_ns:
                        yield segment
        except Exception as exc:  # noqa: BLE001 - one source fails alone, with its reason
            error = f"{path}: decoding stopped: {type(exc).__name__}: {str(exc).replace(opened, path)}"
        stats = decoder.stats
        if error is None and stats.gave_up is not None:  # damaged past repair: say so, keep what was read
            error = f"{path}: {stats.gave_up}; indexed up to {last_end_ns / 1e9:.1f} s"
        if error is None and count == 0:
            error = f"{path}: no decodable frame or audio sample ({stats.damaged_packets} damaged packets)"
        yield SourceReport(source_id, path, error, last_end_ns, decoder.has_video, decoder.has_audio, count,
                           stats.damaged_packets, stats.video_frames_decoded, time.process_time() - cpu0)

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


def pool_size(total_cpus: float, all_stage_cpus: float) -> int:
    """Replicate the whole set of stages as many times as the cluster holds it, at least once."""
    return max(1, int(total_cpus // max(all_stage_cpus, 1e-9)))
