"""Session-scoped synthetic media, as a pytest plugin: each case is built once per test run.

Load it with ``pytest_plugins = ["media_fixtures"]`` in a test module or in tests/conftest.py
(either works, loading twice is harmless). The media live in pytest's temporary folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from media import Damage, build_case, damage
from pipelines.demo.synth import GroundTruth


@pytest.fixture(scope="session")
def synth_case(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, GroundTruth]]:
    """``synth_case("mpegts") -> (path, truth)``; the names are ``media.CASES``."""
    directory = tmp_path_factory.mktemp("synth")
    built: dict[str, tuple[Path, GroundTruth]] = {}

    def get(name: str) -> tuple[Path, GroundTruth]:
        if name not in built:
            built[name] = build_case(name, directory)
        return built[name]

    return get


@pytest.fixture(scope="session")
def damaged_media(synth_case, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``damaged_media("truncated", case="mp4_faststart") -> path``: a broken copy of a case.

    The default source has its MP4 index first, so a truncated copy still decodes up to the cut;
    ``case="mp4"`` (index at the end, like camera files) makes a truncated copy unopenable.
    """
    directory = tmp_path_factory.mktemp("damaged")
    made: dict[tuple[str, str], Path] = {}

    def get(kind: Damage, case: str = "mp4_faststart") -> Path:
        if (kind, case) not in made:
            source, _ = synth_case(case)
            made[kind, case] = damage(kind, source, directory)
        return made[kind, case]

    return get
