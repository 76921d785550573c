"""The clip and vlm profiles end to end through the CLI, on real Ray with real media, with tiny
random-weight models of the real architectures (tests/tiny_clip.py, tests/tiny_models.py): the
plumbing is asserted (vectors in the clip space, captions in the descriptions, the model's prose in
the summary and the answer), not the quality of random weights."""

import http.server
import json
import sqlite3

import pytest

from pipelines.cli import main
from pipelines.demo.synth import Scene, Sound, Speech, build_video
from test_vlm_endpoint import API_KEY, llama_server, reply_json, serve  # noqa: F401 - the real llama.cpp server fixture
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
    # The caption replaces the labels: what follows "Seen: " is not the classifier's best label.
    for description, labels in rows(data, "select description, labels from segments order by start_ns"):
        best_label = json.loads(labels)[0][0]
        assert description.startswith("Seen: ") and not description.startswith(f"Seen: {best_label}"), description
    # "vlm": the model wrote the overview (a model that writes nothing gets the offline wording and "offline").
    summary = run_json(capsys, "summary", "short.mp4", "--data", str(data))
    assert summary["profile"] == "vlm" and summary["text"] and len(summary["chapters"]) >= 1
    answer = run_json(capsys, "ask", "short.mp4", "what is on screen?", "--data", str(data))
    assert answer["profile"] == "vlm" and answer["answer"] and answer["moments"]


def test_vlm_profile_over_an_openai_compatible_endpoint(video, llama_server, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("VIDSCOPE_VLM_API_KEY", API_KEY)
    data = tmp_path / "data"
    report = run_json(capsys, "ingest", str(video), "--data", str(data), "--profile", "vlm", "--endpoint", llama_server,
                      "--no-speech")
    assert report["segments"] == 4 and report["failed"] == []
    assert "api_key" not in (data / "profile.json").read_text()  # the key stays in the environment
    # A text-only endpoint is not asked to caption pictures it cannot see: the labels stay.
    for description, labels in rows(data, "select description, labels from segments order by start_ns"):
        assert description.startswith(f"Seen: {json.loads(labels)[0][0]}"), description
    summary = run_json(capsys, "summary", "short.mp4", "--data", str(data))
    assert summary["profile"] == "vlm" and summary["text"]
    answer = run_json(capsys, "ask", "short.mp4", "what is on screen?", "--data", str(data))
    assert answer["profile"] == "vlm" and answer["answer"]


# --- a sentinel endpoint: the model's words must reach the user ---------------------------------

SENTINELS = {"Summarise the whole video": "Sentinel overview: a cat, then a rocket.",
             "Describe this part of the video": "Sentinel chapter.", "Question about the video": "Sentinel answer."}


@pytest.fixture
def sentinel_endpoint():
    """``start(empty=False) -> base_url``: an OpenAI-compatible server whose every answer is a
    fixed sentence naming what it was asked for (``SENTINELS``), or empty text; ``.prompts``
    holds the prompts it was sent. Everything between vidscope and it is the real code path."""
    servers, prompts = [], []

    def start(empty: bool = False) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                reply_json(self, 200, json.dumps({"data": [{"id": "sentinel"}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                content = body["messages"][-1]["content"]
                prompt = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
                prompts.append(prompt)
                answer = next((said for asked, said in SENTINELS.items() if asked in prompt), "Sentinel caption.")
                message = {"role": "assistant", "content": "" if empty else answer}
                reply_json(self, 200, json.dumps({"choices": [{"message": message}]}).encode())

            def log_message(self, *args):
                pass

        return serve(Handler, servers)

    start.prompts = prompts
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_models_words_reach_the_summary_and_the_answer(video, sentinel_endpoint, tmp_path, capsys):
    data = tmp_path / "data"
    report = run_json(capsys, "ingest", str(video), "--data", str(data), "--profile", "vlm", "--endpoint",
                      sentinel_endpoint(), "--no-speech")
    assert report["segments"] == 4 and report["failed"] == []
    summary = run_json(capsys, "summary", "short.mp4", "--data", str(data))
    assert (summary["profile"], summary["text"]) == ("vlm", SENTINELS["Summarise the whole video"])
    assert summary["chapters"] and all(c["text"] == "Sentinel chapter." for c in summary["chapters"])
    # The overview was asked with the chapters the model wrote, and the chapters with what was detected.
    overview_prompt = next(p for p in sentinel_endpoint.prompts if "Summarise the whole video" in p)
    assert "Sentinel chapter." in overview_prompt and "short.mp4" in overview_prompt
    assert any("Describe this part" in p and "Seen: " in p for p in sentinel_endpoint.prompts)
    answer = run_json(capsys, "ask", "short.mp4", "what is on screen?", "--data", str(data))
    assert (answer["profile"], answer["answer"]) == ("vlm", "Sentinel answer.") and answer["moments"]
    assert "what is on screen?" in sentinel_endpoint.prompts[-1]


def test_a_model_that_writes_nothing_leaves_the_offline_wording_and_says_so(video, sentinel_endpoint, tmp_path, capsys):
    data = tmp_path / "data"
    run_json(capsys, "ingest", str(video), "--data", str(data), "--profile", "vlm", "--endpoint",
             sentinel_endpoint(empty=True), "--no-speech")
    summary = run_json(capsys, "summary", "short.mp4", "--data", str(data))
    assert summary["profile"] == "offline" and "cat" in summary["text"].lower() and "Sentinel" not in summary["text"]
    assert all(c["text"] and "Sentinel" not in c["text"] for c in summary["chapters"])
    answer = run_json(capsys, "ask", "short.mp4", "what is on screen?", "--data", str(data))
    assert answer["profile"] == "offline" and answer["answer"].startswith("The moments that best match")
