"""Damaged media in one ingest: every file fails alone with a reason, or indexes; the batch ends.

    python bench/fuzz.py [--files 200] [--seed 7] [--keep DIR]

Builds four short seed files (H.264+AAC in MP4, the same remuxed to Matroska and MPEG-TS, and a
WAV), writes ``--files`` mutants of them (bit flips, truncation, a damaged header, a run of
garbage in the middle, a chunk duplicated), runs ``vidscope ingest`` once over the folder, and
checks what a user is promised: the command ends with exit 0 or 1 (1: some failed), no
traceback reaches stderr, every mutant is accounted for (indexed, or failed with its own
reason, never an internal error such as an ``IndexError``), and the seeds themselves index. Prints the outcome per kind of damage and the reasons.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.demo.synth import Scene, Sound, Speech, build_video, find_ffmpeg  # noqa: E402

KINDS = ("bitflip", "truncate", "header", "garbage", "duplicate")


def seeds(folder: Path) -> list[Path]:
    """Four 4-s files, each kind of container vidscope meets most."""
    mp4 = folder / "seed.mp4"
    build_video(mp4, (Scene("cat", 2.0), Scene("rocket", 2.0)), (Speech("hello there", 0.5), Sound("crowd", 2.0, 1.5)),
                width=320, height=240, gop=15)
    out = [mp4]
    for suffix, extra in ((".mkv", []), (".ts", ["-f", "mpegts"]), (".wav", ["-vn", "-c:a", "pcm_s16le"])):
        path = folder / f"seed{suffix}"
        codec = [] if suffix == ".wav" else ["-c", "copy"]
        subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(mp4), *codec, *extra, str(path)], check=True)
        out.append(path)
    return out


def mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    buf = bytearray(data)
    n = len(buf)
    if kind == "bitflip":  # a few to a few hundred flipped bits anywhere
        for _ in range(rng.choice((1, 4, 32, 256))):
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":  # cut anywhere, even inside the header
        buf = buf[: rng.randrange(1, n)]
    elif kind == "header":  # the first bytes overwritten (moov/EBML/TS sync/RIFF)
        size = rng.choice((8, 64, 512, 4096))
        buf[:size] = bytes(rng.randrange(256) for _ in range(min(size, n)))
    elif kind == "garbage":  # a run of random bytes in the middle
        start, size = rng.randrange(n), rng.choice((188, 4096, 65536))
        buf[start:start + size] = bytes(rng.randrange(256) for _ in range(size))
    elif kind == "duplicate":  # a chunk repeated (timestamps that go back)
        start = rng.randrange(n // 2)
        size = rng.randrange(1, n // 4)
        buf[start:start] = buf[start:start + size]
    return bytes(buf)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build and keep the media and the data folder here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="vidscope-fuzz-"))
    media, data = work / "media", work / "data"
    shutil.rmtree(media, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    media.mkdir(parents=True)
    rng = random.Random(args.seed)
    originals = seeds(work)
    kinds: dict[str, str] = {}
    for i in range(args.files):
        seed, kind = originals[i % len(originals)], KINDS[(i // len(originals)) % len(KINDS)]
        path = media / f"{i:03d}-{kind}{seed.suffix}"
        path.write_bytes(mutate(seed.read_bytes(), kind, rng))
        kinds[str(path.resolve())] = kind
    for seed in originals:  # the undamaged files, in the same batch: they must index
        shutil.copy(seed, media / seed.name)
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", str(media), "--data", str(data), "--json",
                          "--no-speech"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall_s = time.perf_counter() - started
    problems = []
    if run.returncode not in (0, 1):
        problems.append(f"exit code {run.returncode}")
    if "Traceback" in run.stderr:
        problems.append("a traceback reached stderr")
    try:
        summary = json.loads(run.stdout)
    except ValueError:
        print(run.stderr[-4000:])
        print(f"FAIL: the ingest printed no JSON summary (exit {run.returncode})")
        return 1
    failed = {f["path"]: f["reason"] for f in summary["failed"]}
    seeds_failed = [p for p in failed if Path(p).name.startswith("seed")]
    if seeds_failed:
        problems.append(f"undamaged seeds failed: {seeds_failed}")
    # Mutants that came out byte-identical to another file are one source (content fingerprint).
    accounted = summary["indexed"] + summary["already_indexed"] + len(failed)
    if accounted < summary["sources"]:
        problems.append(f"{summary['sources'] - accounted} sources neither indexed nor failed")
    if any(not reason for reason in failed.values()):
        problems.append("a failure without a reason")
    internal = [r for r in failed.values() if re.search(r"(Index|Key|Type|Attribute|Assertion|ZeroDivision|Memory)Error", r)]
    if internal:  # a bug of ours (or of a library) shown as if it were the file's fault
        problems.append(f"{len(internal)} reasons are internal errors, e.g. {internal[0]}")
    by_kind = Counter(kinds.get(p, "?") for p in failed)
    print(f"{args.files} mutants + {len(originals)} seeds in one ingest: exit {run.returncode}, {wall_s:.0f} s, "
          f"{summary['segments']} segments indexed, {len(failed)} files failed, "
          f"{len(summary['damaged_packets'])} indexed around damaged packets")
    print(f"{'damage':<10} {'files':>5} {'failed':>6} {'indexed':>7}")
    for kind in KINDS:
        total = sum(1 for k in kinds.values() if k == kind)
        print(f"{kind:<10} {total:>5} {by_kind[kind]:>6} {total - by_kind[kind]:>7}")
    reasons = Counter(_shape(reason) for reason in failed.values())
    print("reasons given (by shape):")
    for reason, count in reasons.most_common(12):
        print(f"  {count:>4}  {reason}")
    if problems:
        print("FAIL: " + "; ".join(problems))
        print(run.stderr[-3000:])
        return 1
    print("OK: every file failed alone with a reason or indexed; the batch finished; no traceback")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _shape(reason: str) -> str:
    """A reason without its path and numbers, so that alike ones count together."""
    text = reason.split(": ", 1)[1] if ": " in reason else reason
    return "".join("#" if c.isdigit() else c for c in text)[:110]


if __name__ == "__main__":
    sys.exit(main())
