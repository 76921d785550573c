"""Which decoder samples 1 frame/s cheapest? CPU-seconds per video-second, same file, same run.

    python bench/decode.py [FILE]     (default: a 60 s 1080p30 H.264+AAC testsrc2 clip)

Compares ``ffmpeg -threads 2 -f null`` (full decode of both streams: the floor the issue
names), PyAV decoding every frame, PyAV skipping non-reference frames far from sample instants
(vidscope's default), and decord's seek-based ``get_batch`` (video only).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.media.align import Aligner  # noqa: E402
from operators.media.decode import DecodeConfig, Decoder  # noqa: E402


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def ffmpeg_null(path: str) -> float:
    before = children_cpu()
    subprocess.run(["ffmpeg", "-v", "error", "-threads", "2", "-i", path, "-f", "null", "-"], check=True)
    return children_cpu() - before


def vidscope(path: str, skip: bool) -> float:
    before = self_cpu()
    with Decoder(path, DecodeConfig(skip_unsampled=skip)) as decoder:
        aligner = Aligner("bench", has_video=decoder.has_video, has_audio=decoder.has_audio)
        for item in decoder:
            aligner.process([item])
        aligner.flush(decoder.video_end_ns)
    return self_cpu() - before


def decord_sample(path: str) -> float:
    import decord

    before = self_cpu()
    reader = decord.VideoReader(path, width=398, height=224, num_threads=2)
    step = max(1, round(reader.get_avg_fps()))
    reader.get_batch(list(range(0, len(reader), step))).asnumpy()
    return self_cpu() - before


def make_clip(folder: str) -> str:
    path = os.path.join(folder, "clip1080.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "60", "-c:v", "libx264",
                    "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", path], check=True)
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = sys.argv[1] if len(sys.argv) > 1 else make_clip(tmp)
        with Decoder(path) as d:
            seconds = (d._container.duration or 0) / 1e6
        rows = [("ffmpeg -threads 2 -f null (floor)", ffmpeg_null(path)),
                ("vidscope PyAV, skip unsampled (default)", vidscope(path, True)),
                ("vidscope PyAV, every frame", vidscope(path, False)),
                ("decord get_batch 1 frame/s (video only)", decord_sample(path))]
        floor = rows[0][1]
        print(f"{path}: {seconds:.0f} s of video")
        print(f"{'decoder':44s} {'CPU-s':>7s} {'CPU-s/video-s':>14s} {'vs ffmpeg':>9s}")
        for name, cpu in rows:
            print(f"{name:44s} {cpu:7.2f} {cpu / seconds:14.4f} {cpu / floor:9.2f}")


if __name__ == "__main__":
    main()
