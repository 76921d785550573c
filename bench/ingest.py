"""Ingest benchmark: vidscope's full pipeline against the cost of its parts, in one run.

    python bench/ingest.py                    # 3-minute 1080p30 H.264+AAC with speech and crowds
    python bench/ingest.py --camera           # the same filmed as a camera would: ~8 Mbit/s
    python bench/ingest.py --camera --sample keyframes   # the triage mode
    python bench/ingest.py --minutes 30 --no-stages   # memory must not grow with length

The camera-like file (``camera_file``) re-films the bench file as a hand-held camera would: the
picture shakes (two sines, ~20 px), eight person-sized figures (a body and a head, bobbing as
they walk) cross it at walking speeds, sensor grain (temporal noise, stronger on luma) covers
it, and x264 encodes it at 8 Mbit/s (capped at 10), a keyframe every 2 s as IP cameras do, with
B-frames; the sound is the bench file's. Grain is what makes camera footage expensive: every
frame differs everywhere, so the encoder spends its bits, and the decoder its time, on all of it.

Prints, all measured in this run on this machine: the ``ffmpeg -threads 2 -f null`` decode of
the file (the floor), each stage's standalone CPU-seconds per video-second (in this process,
model set-up excluded), vidscope's full ingest on Ray as x-realtime with and without start-up,
pipeline efficiency (ideal wall time from the stage costs spread over the cores / actual steady
wall time), and peak memory of every process involved (RSS summed, and PSS, which counts shared
pages once).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import psutil  # noqa: E402

from operators.media.decode import DecodeConfig  # noqa: E402
from pipelines.demo import synth  # noqa: E402

CACHE = ROOT / "bench" / ".cache"


def bench_file(minutes: float) -> Path:
    """The benchmark video, rendered once and cached (a 30-minute file loops a 3-minute one)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"bench_{minutes:g}min_1080p30.mp4"
    if path.exists():
        return path
    started = time.perf_counter()
    chunk_minutes = 3.0 if minutes > 3 and (minutes / 3).is_integer() else minutes
    script = synth.bench_script(chunk_minutes * 60)
    synth.build_video(path, script.scenes, script.sounds, width=1920, height=1080, fps=30, preset="veryfast",
                      repeat=round(minutes / chunk_minutes))
    print(f"rendered {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


_WALKERS = ((90, 0.11, 0.55, 1.3), (70, -0.07, 0.60, 1.1), (110, 0.05, 0.50, 1.6), (80, -0.13, 0.62, 1.2),
            (100, 0.09, 0.58, 0.9), (60, -0.05, 0.52, 1.4), (95, 0.15, 0.57, 1.0), (75, -0.10, 0.54, 1.5))
"""Per figure: width in px, crossing speed in frame widths per second (the sign is the way),
height of its feet as a fraction of the frame, and its step rate in Hz."""


def camera_file(minutes: float) -> Path:
    """The bench file as a camera would film it (the module's docstring says how); cached."""
    path = CACHE / f"camera_{minutes:g}min_1080p30_8mbit.mp4"
    if path.exists():
        return path
    source = bench_file(minutes)
    started = time.perf_counter()
    shake = "crop=1872:1053:x='24+18*sin(2*PI*t*0.43)+5*sin(2*PI*t*2.9)':y='13+9*sin(2*PI*t*0.31)+3*sin(2*PI*t*3.7)',scale=1920:1080"
    figures = []
    for k, (width, speed, feet, steps) in enumerate(_WALKERS):
        x = f"mod({k * 241}+t*{speed * 1920:.1f},2200)-140"
        bob = f"6*abs(sin(PI*t*{steps}))"
        body, head = round(width * 2.6), round(width * 0.55)
        shade = ("0x303030", "0x5a4634", "0x203048", "0x604040")[k % 4]
        figures.append(f"drawbox=x='{x}':y='{round(feet * 1080) + 420 - body}-{bob}':w={width}:h={body}:color={shade}:t=fill")
        figures.append(f"drawbox=x='{x}+{(width - head) // 2}':y='{round(feet * 1080) + 420 - body - head}-{bob}':"
                       f"w={head}:h={head}:color=0xc09070:t=fill")
    grain = "noise=c0s=12:c1s=5:c2s=5:allf=t"
    graph = ",".join([shake, *figures, grain, "format=yuv420p"])
    staged = path.with_suffix(".partial.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-vf", graph, "-c:v", "libx264", "-preset", "veryfast",
                    "-profile:v", "high", "-b:v", "8M", "-maxrate", "10M", "-bufsize", "16M", "-g", "60", "-keyint_min", "60",
                    "-c:a", "copy", str(staged)], check=True)
    os.replace(staged, path)
    print(f"rendered {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def bitrate_mbit(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        seconds = float(video.duration * video.time_base) if video.duration else container.duration / 1e6
        size = sum(packet.size for packet in container.demux(video))
    return size * 8 / seconds / 1e6


def cpu_of_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ffmpeg_floor(path: Path) -> tuple[float, float]:
    cpu0, wall0 = cpu_of_children(), time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-threads", "2", "-i", str(path), "-f", "null", "-"], check=True)
    return cpu_of_children() - cpu0, time.perf_counter() - wall0


def stage_costs(path: Path, config) -> dict[str, float]:
    """CPU-seconds of each stage run alone in this process over the whole file (set-up excluded)."""
    from operators.media.align import Aligner
    from operators.media.decode import Decoder
    from operators.analysis.fuse import Observations
    from operators.records import seconds_to_ns
    from threadpoolctl import threadpool_limits

    from pipelines.ingest.batch import build_operators

    threadpool_limits(1, user_api="blas")  # as in the workers (pipelines.ingest.runtime.OperatorActor)
    cpu = time.process_time
    costs: dict[str, float] = {}
    t0 = cpu()
    segments = []
    with Decoder(path, config.decode) as decoder:
        aligner = Aligner("bench", has_video=decoder.has_video, has_audio=decoder.has_audio,
                          window_ns=seconds_to_ns(config.window_seconds))
        for item in decoder:
            segments += aligner.process([item])
        segments += aligner.flush(decoder.video_end_ns)
    costs["decode+align"] = cpu() - t0
    ops = build_operators(config)
    results: dict[str, list] = {}
    for name in ("visual", "audio", "speech"):
        if name not in ops:
            continue
        op = ops[name]
        op.setup()
        t0 = cpu()
        results[name] = [r for i in range(0, len(segments), op.batch_size) for r in op.process(segments[i:i + op.batch_size])]
        costs[name] = cpu() - t0
    by_stage = {name: {r.segment_id: r for r in rs} for name, rs in results.items()}
    observations = [Observations.of(s, **{n: by_stage[n].get(s.id) for n in by_stage}) for s in segments]
    fuse = ops["fuse"]
    fuse.setup()
    t0 = cpu()
    for i in range(0, len(observations), fuse.batch_size):
        fuse.process(observations[i:i + fuse.batch_size])
    costs["fuse"] = cpu() - t0
    return costs


class MemorySampler(threading.Thread):
    """Peak of the summed RSS and PSS of this process's descendants: the ingest's process and
    everything it starts (Ray included), not this harness itself."""

    def __init__(self, period_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.period_s = period_s
        self.peak_rss = self.peak_pss = 0
        self.at_peak: list[tuple[str, int, int]] = []
        self.series: list[int] = []
        self._halt = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self._halt.is_set():
            rss = pss = 0
            rows = []
            for p in me.children(recursive=True):  # the ingest's processes, not this harness
                try:
                    info = p.memory_full_info()
                    rows.append((" ".join(p.cmdline()[:1])[-40:] or p.name(), info.rss, getattr(info, "pss", info.rss)))
                    rss += info.rss
                    pss += rows[-1][2]
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.series.append(rss)
            if rss > self.peak_rss:
                self.at_peak = rows
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._halt.wait(self.period_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def full_ingest(path: Path, config) -> dict[str, float]:
    """vidscope's ingest of ``path`` in a fresh process, as ``vidscope ingest`` runs it, with the
    peak memory of that process and everything it starts (Ray's too)."""
    sampler = MemorySampler()
    sampler.start()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        run = pool.apply(_ingest_in_fresh_process, (path, config))
    sampler.stop()
    if os.environ.get("BENCH_VERBOSE"):
        quarters = [sampler.series[min(len(sampler.series) - 1, len(sampler.series) * q // 4)] / 2**30 for q in (1, 2, 3, 4)]
        print("  RSS at 1/4, 1/2, 3/4, end of the run (GiB):", " ".join(f"{x:.2f}" for x in quarters))
        for name, rss, pss in sorted(sampler.at_peak, key=lambda r: -r[1]):
            print(f"  {name:40s} RSS {rss / 2**20:7.0f} MiB  PSS {pss / 2**20:7.0f} MiB")
    return dict(run, peak_rss_gb=sampler.peak_rss / 1e9, peak_pss_gb=sampler.peak_pss / 1e9)


def _ingest_in_fresh_process(path: Path, config) -> dict[str, float]:
    """Start-up is from this process's start (interpreter, imports, Ray, workers with their
    models) to the first segment indexed; steady state is from the workers being ready to the
    end. The interpreter start is what ``vidscope ingest`` pays too."""
    born = psutil.Process().create_time()
    import ray

    from indexers.index import SegmentIndex
    from pipelines.ingest.batch import Ingestor, local_ray_cpus
    from pipelines.ingest.runtime import RuntimeConfig, start_ray
    from pipelines.ingest.sources import expand

    imported = time.time()
    start_ray(RuntimeConfig(num_cpus=local_ray_cpus(config)))
    ray_up = time.time()
    first: list[float] = []

    def progress(segments: int, _media_s: float) -> None:
        if segments and not first:
            first.append(time.time())

    with tempfile.TemporaryDirectory() as data:
        with SegmentIndex(data) as index:
            ingestor = Ingestor(index, config, expected_sources=1)
            ingestor.start()
            ready = time.time()
            refs, _ = expand([str(path)])
            result = ingestor.ingest(refs, on_progress=progress)
            done = time.time()
            index.save()
            ingestor.close()
    ray.shutdown()
    if result.failed:
        raise SystemExit(f"ingest failed: {[o.error for o in result.failed]}")
    return dict(startup_s=first[0] - born, imports_s=imported - born, ray_s=ray_up - imported, actors_s=ready - ray_up,
                first_s=first[0] - ready, steady_s=done - ready, media_s=result.media_seconds, segments=result.segments)


def main() -> None:
    from pipelines.ingest.batch import IngestConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--no-stages", action="store_true", help="skip the standalone stage costs")
    parser.add_argument("--no-speech", action="store_true")
    parser.add_argument("--file", type=Path, help="benchmark this file instead of the generated one")
    parser.add_argument("--camera", action="store_true", help="the camera-like file (~8 Mbit/s, grain, shake, walkers)")
    parser.add_argument("--sample", choices=("exact", "keyframes"), default="exact", help="as `vidscope ingest --sample`")
    args = parser.parse_args()
    triage = {"sample": args.sample} if args.sample != "exact" else {}  # so that this script also measures older code
    config = IngestConfig(decode=DecodeConfig(frames_per_second=1.0, **triage), speech=not args.no_speech)
    path = args.file or (camera_file(args.minutes) if args.camera else bench_file(args.minutes))
    cores = os.cpu_count() or 1

    floor_cpu, floor_wall = ffmpeg_floor(path)
    # In a child process, so that the models it loads do not count in the ingest's peak memory.
    if args.no_stages:
        costs = {}
    else:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            costs = pool.apply(stage_costs, (path, config))
    run = full_ingest(path, config)
    media_s = run["media_s"]

    print(f"\n{path.name}: {media_s:.0f} s of video at {bitrate_mbit(path):.1f} Mbit/s, {run['segments']} segments, "
          f"{cores} cores, speech {'on' if config.speech else 'off'}, {config.decode.frames_per_second:g} frame/s, "
          f"sample {getattr(config.decode, 'sample', 'exact')}")
    print(f"{'ffmpeg -threads 2 -f null (floor)':36s} {floor_cpu:8.1f} CPU-s  {floor_cpu / media_s:.4f} CPU-s/video-s"
          f"  ({media_s / floor_wall:.1f}x real time)")
    for name, cpu in costs.items():
        extra = f"  = {cpu / floor_cpu:.2f}x the ffmpeg floor" if name == "decode+align" else ""
        print(f"{'stage ' + name:36s} {cpu:8.1f} CPU-s  {cpu / media_s:.4f} CPU-s/video-s{extra}")
    print(f"{'start-up (to the first segment indexed)':36s} {run['startup_s']:8.1f} s      (imports {run['imports_s']:.1f} s, "
          f"ray {run['ray_s']:.1f} s, workers {run['actors_s']:.1f} s, first segment {run['first_s']:.1f} s)")
    total = run["startup_s"] - run["first_s"] + run["steady_s"]
    print(f"{'full ingest, steady state':36s} {run['steady_s']:8.1f} s      {media_s / run['steady_s']:.2f}x real time")
    print(f"{'full ingest, start-up included':36s} {total:8.1f} s      {media_s / total:.2f}x real time")
    if costs:
        ideal_s = max(sum(costs.values()) / cores, max(costs.values()) / cores)
        print(f"{'pipeline efficiency':36s} {ideal_s / run['steady_s']:8.2f}         (ideal {ideal_s:.1f} s = "
              f"stage CPU-s {sum(costs.values()):.1f} / {cores} cores)")
        rest = sum(cpu for name, cpu in costs.items() if name != "decode+align")
        print(f"{'everything but decode / decode':36s} {rest / costs['decode+align']:8.2f}         "
              f"({rest:.1f} / {costs['decode+align']:.1f} CPU-s)")
    print(f"{'peak memory, all processes':36s} {run['peak_rss_gb']:8.2f} GB RSS  {run['peak_pss_gb']:.2f} GB PSS")


if __name__ == "__main__":
    main()
