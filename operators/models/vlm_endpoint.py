"""The ``vlm`` profile over HTTP: an OpenAI-compatible ``/chat/completions`` server (vLLM,
llama.cpp's server, llama-cpp-python's server, Ollama), called with the standard library only.

One request per prompt, greedy (``temperature=0``) so a caption is the same every run. Frames go
as JPEG data URLs only when ``EndpointVlm.send_frames`` is on: a text-only model behind the
endpoint would otherwise be sent images it cannot read, and some servers reject them.
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from typing import Sequence

import numpy as np

from operators.records import ns_to_seconds
from operators.models.vlm_config import EndpointVlm, Prompt

JPEG_QUALITY = 90
ERROR_BODY_CHARS = 300  # of a server's error answer, quoted in ours
RETRY_PAUSE_S = 1.0  # before the one retry after a connection reset or a 503


def spread(count: int, keep: int) -> np.ndarray:
    """Indices of ``keep`` items evenly spread over ``count`` (first and last included), or all."""
    if count <= keep:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, keep).round().astype(np.int64))


def jpeg_data_url(frame: np.ndarray) -> str:
    """A uint8 RGB ``[H, W, 3]`` frame as a ``data:image/jpeg;base64,...`` URL."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _request_body(config: EndpointVlm, prompt: Prompt) -> dict:
    """The JSON body of one chat completion. With frames to send, the user message is a list of
    parts: for each of up to ``max_frames`` frames (evenly spread) a text part giving its time on
    the source clock and the image, then the instruction last, after what it is about."""
    content: str | list[dict] = prompt.text
    if config.send_frames and len(prompt.frames):
        content = []
        for i in spread(len(prompt.frames), config.max_frames):
            content.append({"type": "text", "text": f"frame at {ns_to_seconds(int(prompt.frame_pts_ns[i])):.1f} s"})
            content.append({"type": "image_url", "image_url": {"url": jpeg_data_url(prompt.frames[i])}})
        content.append({"type": "text", "text": prompt.text})
    return {
        "model": config.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": config.max_new_tokens,
        "temperature": 0,
    }


class EndpointBackend:
    """``generate(prompts) -> texts`` against ``config.base_url``; ``setup()`` checks the server
    answers before the first segment is decoded, not after."""

    def __init__(self, config: EndpointVlm) -> None:
        self.config = config
        self._base_url = config.base_url.rstrip("/")

    def setup(self) -> None:
        """GET ``{base_url}/models``: fails with the URL and the reason when no server answers
        there (or it refuses the API key)."""
        self._call("GET", f"{self._base_url}/models")

    def generate(self, prompts: Sequence[Prompt]) -> list[str]:
        url = f"{self._base_url}/chat/completions"
        texts = []
        for prompt in prompts:
            answer = self._call("POST", url, _request_body(self.config, prompt))
            try:
                content = answer["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise RuntimeError(f"vlm endpoint {url} sent no message: {json.dumps(answer)[:ERROR_BODY_CHARS]}") from None
            texts.append((content or "").strip())
        return texts

    def _call(self, method: str, url: str, body: dict | None = None) -> dict:
        """One request, retried once after a connection reset or a 503 (a server restarting or
        still loading its model); every failure is a ``RuntimeError`` naming the URL."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        for attempt in (1, 2):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as error:  # before URLError: it is one
                said = error.read().decode("utf-8", "replace")[:ERROR_BODY_CHARS]
                if error.code == 503 and attempt == 1:
                    time.sleep(RETRY_PAUSE_S)
                    continue
                raise RuntimeError(f"vlm endpoint {url} answered HTTP {error.code}: {said}") from None
            except (urllib.error.URLError, OSError) as error:
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                if isinstance(reason, TimeoutError):
                    raise RuntimeError(f"vlm endpoint {url} did not answer within {self.config.timeout_s} s") from None
                if isinstance(reason, ConnectionResetError) and attempt == 1:
                    time.sleep(RETRY_PAUSE_S)
                    continue
                raise RuntimeError(f"vlm endpoint {url} is not reachable ({reason}); is the server "
                                   "(vLLM, llama.cpp, Ollama) running there?") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise RuntimeError(f"vlm endpoint {url} did not answer JSON: "
                               f"{raw[:ERROR_BODY_CHARS].decode('utf-8', 'replace')}") from None
