"""What the commands share: where results are printed, and the ingest run (config from the
command line, the profile check, a progress bar, failures by name) that ``ingest`` and ``demo``
both make."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("vidscope")

RESULTS = sys.stdout
"""Where results go: the stdout ``main`` was called with. While a command runs, ``sys.stdout`` is
stderr, so that nothing else (Ray's worker and raylet messages) can mix into ``--json`` output."""


def out(*args, **kwargs) -> None:
    """Print a result (on ``RESULTS``)."""
    print(*args, file=RESULTS, **kwargs)




def ingest_config(args: argparse.Namespace):
    from operators.media.decode import DecodeConfig
    from pipelines.ingest.batch import IngestConfig
    from pipelines.ingest.profiles import make_profile

    profile = make_profile(args.profile, model=args.model, endpoint=args.endpoint, device=args.device)
    return IngestConfig(decode=DecodeConfig(frames_per_second=args.fps, sample=args.sample), window_seconds=args.window,
                        speech=not args.no_speech, speech_model=args.speech_model, device=args.device,
                        max_sources_in_flight=args.sources_in_flight, profile=profile,
                        s3_endpoint=getattr(args, "s3_endpoint", None))


def run_ingest(paths: list[str], args: argparse.Namespace, *, force: bool = False) -> tuple[int, dict]:
    """Expand, ingest with a progress bar, report failures by name on stderr. Returns the exit
    code and the summary (printed by the caller: as JSON with --json, as a line otherwise)."""
    from indexers.index import SegmentIndex
    from pipelines.ingest.batch import Ingestor, local_ray_cpus
    from pipelines.ingest.runtime import RuntimeConfig, start_ray
    from pipelines.ingest.sources import expand

    config = ingest_config(args)
    refs, problems = expand(paths, s3_endpoint=config.s3_endpoint)
    started = time.perf_counter()
    if refs:
        use_profile(args.data, config.profile)
        start_ray(RuntimeConfig(ray_address=args.ray_address, num_cpus=local_ray_cpus(config)))
        with SegmentIndex(args.data) as index:
            ingestor = Ingestor(index, config, expected_sources=len(refs))
            try:
                startup_s = ingestor.start()
                log.info("actors ready in %.1f s (%s)", startup_s,
                         ", ".join(f"{k} {v:.1f}s" for k, v in ingestor.setup_seconds.items()))
                nodes = ingestor.started_on
                with _progress(refs, quiet=args.json) as progress:
                    result = ingestor.ingest(refs, force=force, on_progress=progress)
            finally:
                ingestor.close()
            index.save()
    else:
        result, nodes = None, {}
    wall_s = time.perf_counter() - started
    failures = problems + ([(o.ref.uri, o.error) for o in result.failed] if result else [])
    summary = {
        "sources": len(refs),
        "indexed": sum(1 for o in result.outcomes if not o.error and not o.skipped) if result else 0,
        "already_indexed": sum(1 for o in result.outcomes if o.skipped) if result else 0,
        "segments": result.segments if result else 0,
        "media_seconds": round(result.media_seconds, 3) if result else 0.0,
        "wall_seconds": round(wall_s, 3),
        "failed": [{"path": path, "reason": reason} for path, reason in failures],
        "nodes": nodes,
        "damaged_packets": {o.ref.uri: o.report.damaged_packets for o in (result.outcomes if result else [])
                            if o.report and o.report.damaged_packets},
    }
    for path, packets in summary["damaged_packets"].items():
        print(f"warning: {path}: {packets} damaged packets skipped", file=sys.stderr)
    for path, reason in failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    return (1 if failures else 0), summary


def use_profile(data: Path, profile) -> None:
    """Record the profile a data folder is ingested with; refuse another one (one folder's
    vectors come from one set of models)."""
    from pipelines.ingest.profiles import PROFILE_FILE, load_profile, profile_name, save_profile

    if (Path(data) / PROFILE_FILE).exists():
        stored = load_profile(data)
        if stored != profile:
            raise ValueError(f"{data} was ingested with the {profile_name(stored)} profile ({stored}); "
                             "ingest with the same one, or into another --data folder")
    save_profile(data, profile)


def print_ingest_summary(summary: dict) -> None:
    wall_s = summary["wall_seconds"]
    speed = summary["media_seconds"] / wall_s if wall_s else 0.0
    out(f"indexed {summary['indexed']} of {summary['sources']} sources ({summary['already_indexed']} already indexed): "
          f"{summary['segments']} segments, {summary['media_seconds']:.1f} s of media in {wall_s:.1f} s "
          f"({speed:.1f}x real time, start-up included)")


class _progress:
    """A tqdm bar on a terminal, in seconds of media against the probed total, with segments/s
    and x real time; silent otherwise (pipes, --json)."""

    def __init__(self, refs, *, quiet: bool) -> None:
        self.enabled = sys.stderr.isatty() and not quiet
        self.refs = refs
        self.bar = None
        self.started = time.perf_counter()

    def __enter__(self):
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=round(_probed_seconds(self.refs)) or None, unit="s", desc="ingest",
                            dynamic_ncols=True, file=sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                            "{n:.0f}/{total_fmt} s of media [{elapsed}<{remaining}{postfix}]")
        return self

    def __call__(self, segments: int, media_seconds: float) -> None:
        if self.bar is None:
            return
        elapsed = max(time.perf_counter() - self.started, 1e-6)
        self.bar.update(media_seconds - self.bar.n)
        self.bar.set_postfix_str(f"{segments / elapsed:.1f} seg/s, {media_seconds / elapsed:.1f}x real time")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _probed_seconds(refs) -> float:
    """Sum of the sources' durations from their headers (unreadable ones count 0)."""
    from operators.media.decode import MediaError, probe

    total = 0.0
    for ref in refs:
        if "://" in ref.uri:  # a URL may be slow to open, or endless
            continue
        try:
            total += (probe(ref.uri).duration_ns or 0) / 1e9
        except MediaError:
            pass
    return total




def print_moments(docs: list[dict], *, as_json: bool) -> None:
    """Moments as ``Moment.to_json`` (or the API) gives them."""
    if as_json:
        out(json.dumps(docs, indent=2))
        return
    if not docs:
        out("no matching moments")
    for rank, doc in enumerate(docs, 1):
        out(f"{rank}. {doc['source']}  {_clock(doc['start'])}-{_clock(doc['end'])}  score {doc['score']:.3f}")
        if doc.get("description"):
            out(f"   {doc['description']}")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"
