"""The clip and vlm profiles end to end through the CLI, on real Ray with real media, with tiny
random-weight models of the real architectures (tests/tiny_clip.py, tests/tiny_models.py): the
plumbing is asserted (vectors in the clip space, captions in the descriptions, the model's prose in
the summary and the answer), not the quality of random weights."""

import json
import sqlite3

import pytest

from pipelines.cli import main
from pipelines.synth import Scene, Sound, Speech, build_video
from test_vlm_endpoint import API_KEY, llama_server  # noqa: F401 - the real llama.cpp server fixture
from tiny_clip import build_tiny_clip
from tiny_models import build_tiny

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "short.mp4"
    build_video(path, (Scene("cat", 4.0), Scene("rocket", 4.0)), (Speech("the rocket is ready", 1.0), Sound("crowd", 5.0, 2.5)),
                width=320, height=240)
    yield path
    import ray

    ray.shutdown()


def run_json(capsys, *argv):
    capsys.readouterr()
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def rows(data, sql):
    with sqlite3.connect(data / "vidscope.sqlite3") as db:
        return db.execute(sql).fetchall()


def test_clip_profile_indexes_a_joint_space_and_searches_it(video, tmp_path, capsys):
    model = build_tiny_clip(tmp_path / "tiny-clip")
    data = tmp_path / "data"
    report = run_json(capsys, "ingest", str(video), "--data", str(data), "--profile", "clip", "--model", str(model), "--no-speech")
    assert report["segments"] == 4 and report["failed"] == []
    (clip_vectors,) = rows(data, "select count(*) from vectors where space='clip'")[0]
    assert clip_vectors == 4  # one joint-space vector per segment with frames
    assert json.loads((data / "profile.json").read_text())["clip"]["model"] == str(model)
    hits = run_json(capsys, "search", "a photo of a cat", "--data", str(data))
    assert hits and "clip" in hits[0]["why"]  # the query was embedded by the CLIP text tower too
    # A data folder keeps one profile: ingesting with another is refused with the reason.
    capsys.readouterr()
    assert main(["ingest", str(video), "--data", str(data), "--force"]) == 2
    assert "clip profile" in capsys.readouterr().err


def test_vlm_profile_captions_summarises_and_answers(video, tmp_path, capsys):
    model = build_tiny("qwen2_vl", tmp_path / "tiny-qwen2-vl")
    data = tmp_path / "data"
    report = run_json(capsys, "ingest", str(video), "--data", str(data), "--profile", "vlm", "--model", str(model), "--no-speech")
    assert report["segments"] == 4 and report["failed"] == []
    descriptions = [d for (d,) in rows(data, "select description from segments order by start_ns")]
    assert all(d.startswith("Seen: ") for d in descriptions), descriptions  # the caption replaces the labels
    summary = run_json(capsys, "summary", "short.mp4", "--data", str(data))
    assert summary["profile"] == "vlm" and summary["text"] and len(summary["chapters"]) >= 1
    assert all(c["text"] for c in summary["chapters"])
    answer = run_json(capsys, "ask", "short.mp4", "what is on screen?", "--data", str(data))
    assert answer["profile"] == "vlm" and answer["answer"] and answer["moments"]


def test_vlm_profile_over_an_openai_compatible_endpoint(video, llama_server, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("VIDSCOPE_VLM_API_KEY", API_KEY)
    data = tmp_path / "data"
    report = run_json(capsys, "ingest", str(video), "--data", str(data), "--profile", "vlm", "--endpoint", llama_server,
                      "--no-speech")
    assert report["segments"] == 4 and report["failed"] == []
    assert "api_key" not in (data / "profile.json").read_text()  # the key stays in the environment
    descriptions = [d for (d,) in rows(data, "select description from segments order by start_ns")]
    assert not any(d.startswith("Seen: ") and "a photo" in d for d in descriptions)
    # a text-only endpoint is not asked to caption pictures it cannot see: the labels stay
    assert all("Seen: " in d for d in descriptions[:2])
    summary = run_json(capsys, "summary", "short.mp4", "--data", str(data))
    assert summary["profile"] == "vlm" and summary["text"]
    answer = run_json(capsys, "ask", "short.mp4", "what is on screen?", "--data", str(data))
    assert answer["profile"] == "vlm" and answer["answer"]
