"""Ingest benchmark: vidscope's full pipeline against the cost of its parts, in one run.

    python bench/ingest.py                    # 3-minute 1080p30 H.264+AAC with speech and crowds
    python bench/ingest.py --minutes 30 --no-stages   # memory must not grow with length

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
    from pipelines.ingest.batch import build_operators

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
    """Peak of the summed RSS and PSS of this process and all its descendants (Ray included)."""

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
            for p in [me, *me.children(recursive=True)]:
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
    import ray

    from indexers.index import SegmentIndex
    from pipelines.ingest.batch import Ingestor, local_ray_cpus
    from pipelines.ingest.runtime import RuntimeConfig, start_ray
    from pipelines.ingest.sources import expand

    sampler = MemorySampler()
    sampler.start()
    t0 = time.perf_counter()
    start_ray(RuntimeConfig(num_cpus=local_ray_cpus(config)))
    ray_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as data:
        with SegmentIndex(data) as index:
            ingestor = Ingestor(index, config, expected_sources=1)
            actors_s = ingestor.start()
            refs, _ = expand([str(path)])
            t1 = time.perf_counter()
            result = ingestor.ingest(refs)
            steady_s = time.perf_counter() - t1
            index.save()
            ingestor.close()
    sampler.stop()
    ray.shutdown()
    if result.failed:
        raise SystemExit(f"ingest failed: {[o.error for o in result.failed]}")
    if os.environ.get("BENCH_VERBOSE"):
        quarters = [sampler.series[min(len(sampler.series) - 1, len(sampler.series) * q // 4)] / 2**30 for q in (1, 2, 3, 4)]
        print("  RSS at 1/4, 1/2, 3/4, end of the run (GiB):", " ".join(f"{x:.2f}" for x in quarters))
        for name, rss, pss in sorted(sampler.at_peak, key=lambda r: -r[1]):
            print(f"  {name:40s} RSS {rss / 2**20:7.0f} MiB  PSS {pss / 2**20:7.0f} MiB")
    return dict(startup_s=ray_s + actors_s, ray_s=ray_s, actors_s=actors_s, steady_s=steady_s,
                media_s=result.media_seconds, segments=result.segments,
                peak_rss_gb=sampler.peak_rss / 1e9, peak_pss_gb=sampler.peak_pss / 1e9)


def main() -> None:
    from pipelines.ingest.batch import IngestConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--no-stages", action="store_true", help="skip the standalone stage costs")
    parser.add_argument("--no-speech", action="store_true")
    parser.add_argument("--file", type=Path, help="benchmark this file instead of the generated one")
    args = parser.parse_args()
    config = IngestConfig(decode=DecodeConfig(frames_per_second=1.0), speech=not args.no_speech)
    path = args.file or bench_file(args.minutes)
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

    print(f"\n{path.name}: {media_s:.0f} s of 1080p30 video, {run['segments']} segments, {cores} cores, "
          f"speech {'on' if config.speech else 'off'}, {config.decode.frames_per_second:g} frame/s")
    print(f"{'ffmpeg -threads 2 -f null (floor)':36s} {floor_cpu:8.1f} CPU-s  {floor_cpu / media_s:.4f} CPU-s/video-s"
          f"  ({media_s / floor_wall:.1f}x real time)")
    for name, cpu in costs.items():
        extra = f"  = {cpu / floor_cpu:.2f}x the ffmpeg floor" if name == "decode+align" else ""
        print(f"{'stage ' + name:36s} {cpu:8.1f} CPU-s  {cpu / media_s:.4f} CPU-s/video-s{extra}")
    print(f"{'start-up (ray.init + actors ready)':36s} {run['startup_s']:8.1f} s      (ray {run['ray_s']:.1f} s, "
          f"actors {run['actors_s']:.1f} s)")
    total = run["startup_s"] + run["steady_s"]
    print(f"{'full ingest, steady state':36s} {run['steady_s']:8.1f} s      {media_s / run['steady_s']:.2f}x real time")
    print(f"{'full ingest, start-up included':36s} {total:8.1f} s      {media_s / total:.2f}x real time")
    if costs:
        ideal_s = max(sum(costs.values()) / cores, max(costs.values()) / cores)
        print(f"{'pipeline efficiency':36s} {ideal_s / run['steady_s']:8.2f}         (ideal {ideal_s:.1f} s = "
              f"stage CPU-s {sum(costs.values()):.1f} / {cores} cores)")
    print(f"{'peak memory, all processes':36s} {run['peak_rss_gb']:8.2f} GB RSS  {run['peak_pss_gb']:.2f} GB PSS")


if __name__ == "__main__":
    main()
