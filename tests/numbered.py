"""Videos whose every frame says its own number, for checking cuts frame by frame.

Frame ``i`` carries ``i`` in binary as ``BITS`` black or white blocks across its middle (robust to
any H.264 quality), over a moving gradient so that the encoder has real work. The audio is a
sine whose pitch steps every second (``tone_hz(second)``), so a clip's audio can be checked
against its video.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 10
WIDTH, HEIGHT = 320, 240
SAMPLE_RATE = 48_000


def tone_hz(second: int) -> float:
    return 300.0 + 100.0 * second


def write_numbered(path: Path, *, seconds: float = 8.0, fps: int = 25, gop: int = 25, b_frames: bool = True,
                   audio: bool = True, container: str | None = None) -> Path:
    """Write the numbered video; ``b_frames=False`` makes a stream the copy path may cut."""
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "3" if b_frames else "0",
                         "preset": "veryfast"}
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=SAMPLE_RATE)
            sound.layout = "mono"
        n = int(round(seconds * fps))
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(numbered_image(i), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
            wave = (0.3 * np.sin(2 * np.pi * np.vectorize(tone_hz)(t.astype(int)) * t)).astype(np.float32)
            for at in range(0, len(wave), 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, at : at + 1024].copy(), format="flt", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = SAMPLE_RATE, at, Fraction(1, SAMPLE_RATE)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def numbered_image(i: int) -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack([(x + 3 * i) % 256, (y + 2 * i) % 256, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    block = WIDTH // BITS
    for bit in range(BITS):
        image[100:140, bit * block : (bit + 1) * block] = 255 if (i >> bit) & 1 else 0
    return image


def read_number(image: np.ndarray) -> int:
    """The number drawn by ``numbered_image`` (RGB ``[H, W, 3]`` at the same size)."""
    block = image.shape[1] // BITS
    rows = image[110:130].mean(axis=(0, 2))
    return sum(1 << bit for bit in range(BITS) if rows[bit * block + 4 : (bit + 1) * block - 4].mean() > 128)


def frame_numbers(path: Path) -> list[tuple[float, int]]:
    """``(time in seconds, number)`` of every frame of ``path``, in display order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(f.time), read_number(f.to_ndarray(format="rgb24"))) for f in container.decode(stream)]
