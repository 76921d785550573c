"""The query commands against a running ``vidscope serve`` (``--server URL`` or
``$VIDSCOPE_SERVER``): the models and index stay loaded there, so a command costs one HTTP
request. Standard library only: nothing heavy is imported to ask."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

TOKEN_ENV = "VIDSCOPE_API_TOKEN"


def get_json(server: str, path: str, params: dict | None = None, *, timeout_s: float = 30.0) -> dict:
    """``GET server/api/v1/path?params`` as JSON; the server's error message as a ``ValueError``."""
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
    url = f"{server.rstrip('/')}/api/v1/{path}" + (f"?{query}" if query else "")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token := os.environ.get(TOKEN_ENV):
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("message") or exc.reason
        except ValueError:
            message = exc.reason
        raise ValueError(f"the server at {server} answered {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise OSError(f"cannot reach the server at {server}: {exc.reason}") from None
