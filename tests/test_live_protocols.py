"""RTSP and RTMP (vidscope listening, a camera pushing), HLS over loopback HTTP and SRT (through the
ffmpeg bridge), read side by side by one ``vidscope live``: each stream shows its own photo, and
a search for it finds that stream."""

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from operators.media.decode import MediaError
from operators.media.live import split_listen
from pipelines.demo.synth import Scene, build_video
from test_live import cli, read_status, wait_for

PHOTOS = {"rtsp": "cat", "rtmp": "coffee", "hls": "rocket", "srt": "motorcycle"}
QUERIES = {"rtsp": "a cat", "rtmp": "a cup of coffee", "hls": "a rocket", "srt": "a motorcycle"}


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_listen_urls_become_ffmpeg_server_options():
    assert split_listen("rtsp://0.0.0.0:8554/cam?listen=1", 10) == (
        "rtsp://0.0.0.0:8554/cam", {"rtsp_flags": "listen", "listen_timeout": "10"})
    assert split_listen("rtmp://0.0.0.0:1935/live/cam?listen=1&x=2", 5) == (
        "rtmp://0.0.0.0:1935/live/cam?x=2", {"listen": "1", "timeout": "5"})
    assert split_listen("rtsp://camera/stream?channel=1", 10) == ("rtsp://camera/stream?channel=1", {})
    with pytest.raises(MediaError, match="listen=1 works for"):
        split_listen("udp://0.0.0.0:5000?listen=1", 10)


def pushing(command: list[str], until: threading.Event) -> threading.Thread:
    """Run a sender, again whenever it fails (nobody listening yet), until it has played once."""
    def run():
        while not until.is_set():
            if subprocess.run(command, capture_output=True).returncode == 0:
                return
            until.wait(0.5)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_rtsp_rtmp_hls_and_srt_are_read_side_by_side_and_each_is_found_by_what_it_shows(tmp_path):
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg and "srt" in subprocess.run([ffmpeg, "-hide_banner", "-protocols"], capture_output=True,
                                              text=True).stdout, "make test installs Debian's ffmpeg (with libsrt)"
    videos = {}
    for name, photo in PHOTOS.items():
        videos[name] = tmp_path / f"{name}.mp4"
        build_video(videos[name], (Scene(photo, 12.0),), (), width=320, height=240, gop=30)
    rtsp, rtmp, http, srt = free_port(), free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    hls = tmp_path / "hls"
    hls.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", http), functools.partial(QuietHandler, directory=str(hls)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = {"rtsp": f"rtsp://127.0.0.1:{rtsp}/cam?listen=1", "rtmp": f"rtmp://127.0.0.1:{rtmp}/live/cam?listen=1",
            "hls": f"http://127.0.0.1:{http}/stream.m3u8", "srt": f"srt://127.0.0.1:{srt}?mode=caller"}
    data = tmp_path / "data"
    argv = [sys.executable, "-m", "pipelines.cli", "live", *urls.values(), "--data", str(data), "--no-speech", "--json"]
    for name in urls:
        argv += ["--name", name]
    live = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    done = threading.Event()
    base = [ffmpeg, "-nostdin", "-loglevel", "error", "-re"]
    try:
        wait_for(lambda: all(read_status(data / "live" / f"{n}.json") for n in urls) or live.poll() is not None, 120,
                 "every stream to start")
        assert live.poll() is None, live.communicate()[1][-3000:]
        commands = [
            base + ["-i", str(videos["rtsp"]), "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp",
                    f"rtsp://127.0.0.1:{rtsp}/cam"],
            base + ["-i", str(videos["rtmp"]), "-c", "copy", "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/cam"],
            base + ["-i", str(videos["hls"]), "-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_list_size", "6",
                    str(hls / "stream.m3u8")],
            base + ["-i", str(videos["srt"]), "-c", "copy", "-f", "mpegts", f"srt://127.0.0.1:{srt}?mode=listener"],
        ]
        for command in commands:  # each camera pushes, again and again until vidscope listens
            pushing(command, done)

        def indexed() -> dict | None:
            counts = {n: (read_status(data / "live" / f"{n}.json") or {}).get("segments_indexed", 0) for n in urls}
            return counts if min(counts.values()) >= 3 else None

        counts = wait_for(indexed, 90, "3 segments of every stream")
        print("segments indexed per stream:", counts)
    finally:
        done.set()
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=120)
        server.shutdown()
    assert live.returncode == 0, err[-3000:]
    reports = {r["name"]: r for r in json.loads(out)}
    assert set(reports) == set(urls) and all(r["error"] is None for r in reports.values()), reports
    for name, query in QUERIES.items():
        hits = json.loads(cli("search", query, "--data", str(data), "--json").stdout)
        assert hits[0]["source"] == name, (query, [(h["source"], h["description"]) for h in hits[:3]])
