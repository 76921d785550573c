"""A static file server on loopback that answers byte ranges (206), as web servers and CDNs do:
the standard library's ``http.server`` ignores ``Range``, so FFmpeg would read a whole file to
seek. Counts the range requests it answered, so a test can tell that reads were ranged."""

from __future__ import annotations

import contextlib
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Handler(SimpleHTTPRequestHandler):
    ranged = 0

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        self._remaining = None
        match = RANGE.match(self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first = int(match[1]) if match[1] else max(0, size - int(match[2] or 0))
        last = min(int(match[2]), size - 1) if match[1] and match[2] else size - 1
        if first >= size:
            self.send_error(416)
            return None
        f = path.open("rb")
        f.seek(first)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        type(self).ranged += 1
        self._remaining = last - first + 1
        return f

    def end_headers(self) -> None:
        if "Range" not in self.headers:
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def copyfile(self, source, outputfile) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        try:
            while remaining > 0 and (chunk := source.read(min(remaining, 1 << 16))):
                outputfile.write(chunk)
                remaining -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):  # FFmpeg closes a range it no longer needs
            pass


@contextlib.contextmanager
def serve_folder(folder: Path):
    """``(base URL, handler class)`` for files under ``folder``, until the block ends."""
    handler = type("Handler", (_Handler,), {"ranged": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
