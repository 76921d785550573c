"""Live recording: a stream's packets kept in rolling MPEG-TS files (stream copy), trimmed by
retention, cut back into clips on the requested frames; and a real 10-minute live stream
recorded with 3 minutes retained, whose highlight exports and plays."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from indexers.clips import cut_recorded
from live_run import live_run
from numbered import frame_numbers, write_numbered
from operators.media.decode import container_start_ns
from operators.media.record import RecordConfig, Recorder, read_index

S = 1_000_000_000
REPO = Path(__file__).resolve().parents[1]


def record_file(source: Path, config: RecordConfig, *, offset_ns: int) -> Recorder:
    """Feed a file's packets to a recorder the way the live reader does: the connection's
    place on the stream clock becomes known a few packets in."""
    recorder = Recorder(config)
    with av.open(str(source)) as c:
        recorder.begin(list(c.streams), container_start_ns(c))
        for i, packet in enumerate(c.demux()):
            if i == 3:
                recorder.anchor(offset_ns)
            recorder.packet(packet)
    recorder.end()
    return recorder


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    return write_numbered(tmp_path_factory.mktemp("rec") / "numbered.mp4", seconds=20)  # keyframe each second


def test_files_roll_at_keyframes_named_by_stream_time_and_retention_keeps_the_newest(numbered, tmp_path):
    record_file(numbered, RecordConfig(str(tmp_path / "cam"), segment_seconds=2.0, retain_seconds=6.0), offset_ns=5 * S)
    kept = read_index(tmp_path / "cam")
    # The stream ran 5-25 s; 2-s files; 6 s of finished files kept beside the last one.
    assert [(f.start_ns / S, f.end_ns / S) for f in kept] == [(17, 19), (19, 21), (21, 23), (23, 25)]
    assert sorted(p.name for p in (tmp_path / "cam").glob("*.ts")) == [f.name for f in kept]
    first = frame_numbers(tmp_path / "cam" / kept[0].name)
    assert first[0][1] == 300 and first[-1][1] == 349  # 17 s of stream = 12 s of the file: frames 300-349
    assert all(f.bytes > 10_000 for f in kept)


def test_retention_by_size(numbered, tmp_path):
    record_file(numbered, RecordConfig(str(tmp_path / "cam"), segment_seconds=2.0, retain_bytes=1 << 20), offset_ns=0)
    kept = read_index(tmp_path / "cam")
    assert sum(f.bytes for f in kept[:-1]) <= 1 << 20 < sum(f.bytes for f in kept) + 400_000
    assert kept[-1].end_ns == 20 * S


def test_a_clip_across_recorded_files_holds_exactly_its_frames(numbered, tmp_path):
    record_file(numbered, RecordConfig(str(tmp_path / "cam"), segment_seconds=2.0), offset_ns=5 * S)
    # 18.52-20.5 s of stream = 13.52-15.5 s of the file: frames 338 (on screen at 13.52) to 387, across a file boundary.
    report = cut_recorded(tmp_path / "cam", int(18.52 * S), int(20.5 * S), tmp_path / "clip.mp4")
    assert [n for _, n in frame_numbers(tmp_path / "clip.mp4")] == list(range(338, 388))
    assert report.start_ns == pytest.approx(18.52 * S, abs=0.04 * S)
    with pytest.raises(LookupError, match="not recorded or is no longer kept"):
        cut_recorded(tmp_path / "cam", 60 * S, 62 * S, tmp_path / "late.mp4")


def test_a_bad_retention_is_refused():
    with pytest.raises(ValueError, match="at least one recording segment"):
        RecordConfig("/tmp/x", segment_seconds=10, retain_seconds=5)
    with pytest.raises(ValueError, match="at least 1 MB"):
        RecordConfig("/tmp/x", retain_bytes=1000)


@pytest.mark.slow
def test_ten_minutes_live_with_three_retained_and_a_highlight_exports(tmp_path):
    """A real UDP stream for 10 minutes through `vidscope live --record --retain 3m`."""
    from pipelines.demo.synth import Scene, Sound, build_video

    # 30 s looped: a cat, then cheering over the motorcycle from 20 s (a highlight each loop);
    # a keyframe every 5 s, as cameras send them, so the recording's files are 10 s each.
    clip = tmp_path / "loop.mp4"
    build_video(clip, (Scene("cat", 20.0), Scene("motorcycle", 10.0)), (Sound("crowd", 21.0, 5.0),),
                width=320, height=240, fps=30, gop=150)
    data = tmp_path / "data"
    with live_run(clip, data, "--record", "--retain", "3m", "--no-speech"):
        time.sleep(600)
    kept = read_index(data / "recordings" / "cam")
    kept_s = (kept[-1].end_ns - kept[0].start_ns) / S
    # At least the 3 minutes asked for (the file being written included), at most one 10-s file more.
    assert 179.5 <= kept_s <= 200.5, [(f.start_ns / S, f.end_ns / S) for f in kept]
    assert kept[0].start_ns > 380 * S
    assert sorted(p.name for p in (data / "recordings" / "cam").glob("*.ts")) == [f.name for f in kept]
    events = [json.loads(line) for line in (data / "live" / "cam.events.jsonl").read_text().splitlines()]
    recent = [e for e in events if e["type"] == "highlight" and e["stream_start"] >= kept[0].start_ns / S + 5]
    assert recent, events[-5:]
    out = tmp_path / "moment.mp4"
    exported = subprocess.run([sys.executable, "-m", "pipelines.cli", "export", "cam", str(recent[-1]["stream_start"]),
                               str(recent[-1]["stream_end"]), "-o", str(out), "--data", str(data), "--json"],
                              cwd=REPO, capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    with av.open(str(out)) as c:  # it plays: frames and sound, as long as the moment
        frames = sum(1 for _ in c.decode(video=0))
        assert c.streams.audio and c.duration / 1e6 == pytest.approx(recent[-1]["stream_end"] - recent[-1]["stream_start"], abs=0.2)
    assert frames >= 20
    shutil.rmtree(data / "recordings", ignore_errors=True)
