"""Clips start and end on the requested frames: cut from videos whose frames carry their own
numbers (tests/numbered.py), decoded and read back frame by frame."""

import json
import math

import av
import numpy as np
import pytest

from indexers.clips import cut_clip
from indexers.index import SegmentIndex
from indexers.store import SourceInfo
from numbered import SAMPLE_RATE, frame_numbers, tone_hz, write_numbered
from pipelines.cli import main

S = 1_000_000_000
FPS = 25


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("numbered")
    return {
        "bframes": write_numbered(folder / "bframes.mp4"),  # x264 defaults: B-frames, a keyframe each second
        "baseline": write_numbered(folder / "baseline.mp4", b_frames=False),  # a camera's stream: no B-frames
        "ts": write_numbered(folder / "ts.ts", container="mpegts"),  # its clock starts at 1.4 s, audio first
        "silent": write_numbered(folder / "silent.mp4", audio=False),
    }


def source_frame_times(path) -> dict[int, float]:
    """Each frame's number -> its time in the source's own clock (PTS minus the container start)."""
    with av.open(str(path)) as c:
        origin = (c.start_time or 0) / 1e6
    return {n: t - origin for t, n in frame_numbers(path)}


def expected_numbers(times: dict[int, float], start: float, end: float) -> list[int]:
    """The frame on screen at ``start`` (the last at or before it) through the last one shown before ``end``."""
    on_screen = max(n for n, t in times.items() if t <= start + 1e-6)
    return [n for n, t in sorted(times.items()) if n >= on_screen and t < end - 1e-6]


def dominant_hz(path, at_s: float) -> float:
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        samples = np.concatenate([f.to_ndarray()[0] for frame in c.decode(audio=0) for f in resampler.resample(frame)])
    window = samples[int(at_s * SAMPLE_RATE) : int(at_s * SAMPLE_RATE) + 4800]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    return float(np.fft.rfftfreq(len(window), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


@pytest.mark.parametrize("name,start,end,mode", [
    ("bframes", 2.3, 4.1, "encode"),  # mid-GOP with B-frames: encoded
    ("bframes", 0.0, 1.0, "encode"),
    ("baseline", 2.0, 3.0, "copy"),  # a keyframe on screen at the start, no B-frames: copied
    ("baseline", 2.5, 3.52, "encode"),  # not on a keyframe: encoded
    ("ts", 1.0, 2.0, "encode"),  # TS seeks land by bytes; its frames sit 21 ms after each 40-ms step
    ("silent", 7.9, 9.0, "encode"),  # past the end: cut at the last frame
])  # fmt: skip
def test_a_clip_holds_exactly_the_frames_of_its_span(videos, tmp_path, name, start, end, mode):
    times = source_frame_times(videos[name])
    report = cut_clip(str(videos[name]), int(start * S), int(end * S), tmp_path / "clip.mp4")
    got = frame_numbers(tmp_path / "clip.mp4")
    assert [n for _, n in got] == expected_numbers(times, start, end)
    assert report.mode == mode
    assert got[0][0] == pytest.approx(0.0, abs=1e-3)  # the clip's clock starts on its first frame
    assert report.start_ns / S == pytest.approx(times[got[0][1]], abs=1e-3)
    assert abs(report.start_ns / S - start) < 1 / FPS  # within one frame of the request


@pytest.mark.parametrize("name", ["bframes", "baseline", "ts"])
def test_a_clips_audio_is_the_audio_of_its_span(videos, tmp_path, name):
    # The tone steps every second of the source: 1.5 s into a clip from 2.7 s is second 4's tone.
    report = cut_clip(str(videos[name]), int(2.7 * S), int(5.2 * S), tmp_path / "clip.mp4")
    clip_start = report.start_ns / S
    assert dominant_hz(tmp_path / "clip.mp4", 1.5) == pytest.approx(tone_hz(math.floor(clip_start + 1.5)), abs=15)
    assert dominant_hz(tmp_path / "clip.mp4", 0.05) == pytest.approx(tone_hz(2), abs=15)
    with av.open(str(tmp_path / "clip.mp4")) as c:
        assert float(c.duration / 1e6) == pytest.approx(5.2 - clip_start, abs=0.1)


def test_copy_is_refused_when_the_cut_does_not_allow_it(videos, tmp_path):
    with pytest.raises(ValueError, match="cannot be stream-copied"):
        cut_clip(str(videos["bframes"]), 2 * S, 3 * S, tmp_path / "clip.mp4", mode="copy")
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_bad_spans_are_refused_with_reasons(videos, tmp_path):
    with pytest.raises(ValueError, match="end must come after"):
        cut_clip(str(videos["bframes"]), 3 * S, 3 * S, tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="nothing between"):
        cut_clip(str(videos["bframes"]), 20 * S, 21 * S, tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="cannot cut a clip"):
        (tmp_path / "junk.mp4").write_bytes(b"\0" * 5000)
        cut_clip(str(tmp_path / "junk.mp4"), 0, S, tmp_path / "clip.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


def test_export_cuts_an_indexed_source_by_name(videos, tmp_path, capsys):
    data = tmp_path / "data"
    with SegmentIndex(data) as index:
        index.add_source(SourceInfo("0123456789abcdef", str(videos["baseline"]), "baseline.mp4", True, True,
                                    duration_ns=8 * S, status="done"))
    out = tmp_path / "moment.mp4"
    assert main(["export", "baseline.mp4", "3.0", "4.5", "-o", str(out), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "copy" and report["start"] == pytest.approx(3.0)
    assert [n for _, n in frame_numbers(out)] == list(range(75, 113))
    # An unknown source, or a folder as the output, is a clear error and writes nothing.
    assert main(["export", "nothing.mp4", "0", "1", "-o", str(tmp_path / "x.mp4"), "--data", str(data)]) == 2
    assert "no source 'nothing.mp4'" in capsys.readouterr().err
    assert main(["export", "baseline.mp4", "0", "1", "-o", str(tmp_path), "--data", str(data)]) == 2
    assert "is a folder" in capsys.readouterr().err
