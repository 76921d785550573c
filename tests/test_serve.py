"""The HTTP API on a real index (tests/serve_fixture.py): every route, its errors, access, clips
by range request, metrics, and the live event stream."""

import io
import json
import threading
import time

import av
import httpx
import pytest
from fastapi.testclient import TestClient

from pipelines.cli import main
from pipelines.serve.app import ServeConfig, create_app

pytestmark = pytest.mark.slow
TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def client(served_data, library):
    with TestClient(create_app(ServeConfig(served_data), library=library)) as c:
        yield c


@pytest.fixture(scope="module")
def ids(client) -> dict[str, str]:
    return {s["name"]: s["source_id"] for s in client.get("/api/v1/sources").json()["sources"]}


def test_search_finds_the_moment_with_urls_to_watch_it(client, ids):
    r = client.get("/api/v1/search", params={"q": "a cat", "top_k": 3})
    assert r.status_code == 200
    first = r.json()["results"][0]
    assert first["source"] == "story.mp4" and 0 <= first["start"] < 6
    assert {"source", "source_id", "start", "end", "score", "why", "clip_url", "thumbnail_url"} <= first.keys()
    picture = client.get(first["thumbnail_url"])
    assert picture.headers["content-type"] == "image/jpeg" and picture.content[:2] == b"\xff\xd8"
    assert len(picture.content) < 20_000
    assert first["media_url"] == f"/api/v1/sources/{ids['story.mp4']}/media"  # an MP4 a browser plays whole


def test_search_by_source_and_time_range(client, ids):
    r = client.get("/api/v1/search", params={"q": "a rocket", "start": 12, "end": 18, "source": ids["story.mp4"]})
    results = r.json()["results"]
    assert results and all(12 <= m["start"] and m["end"] <= 18 for m in results)
    assert results[0]["start"] < 18
    quiet = client.get("/api/v1/search", params={"q": "a cat", "source": ids["quiet.mp4"]}).json()["results"]
    assert quiet and {m["source"] for m in quiet} == {"quiet.mp4"}


def test_highlights_by_kind(client):
    found = client.get("/api/v1/highlights").json()["results"]
    crowd = [h for h in found if h["source"] == "story.mp4" and h["start"] < 23 and h["end"] > 19]
    assert crowd and "sound" in crowd[0]["kinds"] and crowd[0]["clip_url"].startswith("/api/v1/sources/")
    sounds = client.get("/api/v1/highlights", params={"kind": "sound"}).json()["results"]
    assert sounds and all("sound" in h["kinds"] for h in sounds)
    r = client.get("/api/v1/highlights", params={"kind": "smell"})
    assert r.status_code == 422 and "kind" in r.json()["message"]


def test_sources_detail_summary_and_ask(client, ids):
    detail = client.get(f"/api/v1/sources/{ids['story.mp4']}").json()
    assert detail["status"] == "done" and detail["duration"] == pytest.approx(24, abs=0.1)
    assert [round(s["start"]) for s in detail["shots"]] == [0, 6, 12, 18]
    said = " ".join(s["text"].lower() for s in detail["tracks"]["speech"] if s["start"] < 6)
    assert {"remember", "buy", "fresh"} <= set(said.replace(".", " ").split())  # tiny.en hears "bread" as "red"
    assert any(h["start"] < 23 and h["end"] > 19 for h in detail["tracks"]["highlights"])
    summary = client.get(f"/api/v1/sources/{ids['story.mp4']}/summary").json()
    assert summary["source"] == "story.mp4" and len(summary["chapters"]) >= 2 and summary["text"]
    answer = client.get(f"/api/v1/sources/{ids['story.mp4']}/ask", params={"q": "what should I buy?"}).json()
    assert answer["moments"][0]["start"] < 6 and "buy" in answer["answer"].lower()


def test_errors_are_json_with_a_message(client):
    r = client.get("/api/v1/search", params={"q": "a cat", "top_k": 0})
    assert r.status_code == 422 and r.json()["status"] == 422 and "top_k" in r.json()["message"]
    assert client.get("/api/v1/search").status_code == 422
    r = client.get("/api/v1/sources/0000000000000000")
    assert r.status_code == 404 and "no source" in r.json()["message"]
    assert client.get("/api/v1/segments/12345/thumbnail.jpg").status_code == 404
    assert client.get("/api/v1/nothing").json() == {"status": 404, "message": "Not Found"}
    r = client.get("/api/v1/search", params={"q": "a cat", "start": 9, "end": 3})
    assert r.status_code == 422 and "end must come after start" in r.json()["message"]


@pytest.mark.parametrize("path", [
    "/api/v1/sources/..%2F..%2Fetc%2Fpasswd/clip.mp4?start=0&end=1",
    "/api/v1/sources/%2Fetc%2Fpasswd/media",
    "/api/v1/sources/..%2Fvidscope.sqlite3/media",
    "/static/..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/../app.py",
])  # fmt: skip
def test_paths_from_the_request_never_reach_the_disk(client, path):
    r = client.get(path)
    assert r.status_code in (404, 422) and b"root:" not in r.content and b"import" not in r.content


def test_clips_answer_range_requests(client, ids):
    url = f"/api/v1/sources/{ids['story.mp4']}/clip.mp4"
    whole = client.get(url, params={"start": 6, "end": 9})
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(url, params={"start": 6, "end": 9}, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    with av.open(io.BytesIO(whole.content)) as clip:
        assert clip.duration / 1e6 == pytest.approx(3.0, abs=0.1)
    media = client.get(f"/api/v1/sources/{ids['story.mp4']}/media", headers={"Range": "bytes=0-9"})
    assert media.status_code == 206 and media.content[4:8] == b"ftyp"
    r = client.get(url, params={"start": 30, "end": 31})
    assert r.status_code == 422 and "24 s long" in r.json()["message"]


def test_health_readiness_and_metrics(client):
    client.get("/api/v1/search", params={"q": "a cat"})  # a request to be counted, whatever ran before
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["message"] == "14 segments indexed"
    text = client.get("/metrics").text
    assert "vidscope_segments_indexed 14.0" in text
    assert 'vidscope_http_request_seconds_count{method="GET",route="/api/v1/search",status="200"}' in text


def test_off_loopback_a_token_is_required(served_data, library):
    with pytest.raises(ValueError, match="needs an access token"):
        ServeConfig(served_data, host="0.0.0.0")
    app = create_app(ServeConfig(served_data, host="0.0.0.0", token=TOKEN), library=library)
    with TestClient(app) as c:
        r = c.get("/api/v1/sources")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["message"]
        assert c.get("/api/v1/sources", headers={"Authorization": "Bearer wrong-token-of-some-length"}).status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/api/v1/sources", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        c.cookies.set("vidscope_token", TOKEN)  # what the web app sets, so <video> requests carry it
        assert c.get("/api/v1/sources").status_code == 200
        assert c.get("/healthz").status_code == 200  # probes stay open


def test_the_cli_refuses_to_serve_off_loopback_without_a_token(served_data, capsys, monkeypatch):
    monkeypatch.delenv("VIDSCOPE_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data", str(served_data)]) == 2
    assert "needs an access token" in capsys.readouterr().err


def test_cors_is_off_unless_configured(served_data, library, client):
    origin = {"Origin": "http://elsewhere.example"}
    assert "access-control-allow-origin" not in client.get("/api/v1/sources", headers=origin).headers
    app = create_app(ServeConfig(served_data, cors_origins=("http://elsewhere.example",)), library=library)
    with TestClient(app) as c:
        assert c.get("/api/v1/sources", headers=origin).headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_live_events_arrive_as_server_sent_events(server, served_data):
    folder = served_data / "live"
    folder.mkdir(exist_ok=True)
    events_file = folder / "cam.events.jsonl"
    got = []

    def listen():
        with httpx.stream("GET", f"{server.url}/api/v1/events", timeout=20) as r:
            kind = None
            for line in r.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    got.append((kind, json.loads(line.split(":", 1)[1])))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(1.0)  # connected; events written before a client connects are not replayed
    event = {"type": "highlight", "source": "cam", "stream_start": 10.0, "stream_end": 12.0, "reason": "Cheering"}
    with events_file.open("a") as f:
        f.write(json.dumps(event) + "\n")
    listener.join(15)
    assert got == [("highlight", event)]
    (folder / "cam.json").write_text(json.dumps({"name": "cam", "state": "running", "lag_seconds": 1.5}))
    assert httpx.get(f"{server.url}/api/v1/live").json()["streams"][0]["lag_seconds"] == 1.5
    assert 'vidscope_live_lag_seconds{stream="cam"} 1.5' in httpx.get(f"{server.url}/metrics").text
    events_file.unlink()
    (folder / "cam.json").unlink()
