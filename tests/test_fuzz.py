"""Damaged media in one batch (issue 10, untrusted media): ``bench/fuzz.py``, 200 mutants of four
seed files (bit flips, truncations, damaged headers, garbage runs, duplicated chunks; ~40 s).
Each file fails alone with a reason or indexes, the undamaged seeds index, the batch ends, no
traceback reaches the user, and no reason is an internal error: with this seed, mutant 122 (a
TS announcing a stream after its header) used to fail with PyAV's ``IndexError`` and mutant 140
(an MP4 sample size past memory) with ``MemoryError``."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_damaged_files_in_one_ingest_each_fail_alone_with_a_reason_and_the_batch_finishes():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz.py"), "--files", "200", "--seed", "7"],
                         capture_output=True, text=True, timeout=900)
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "OK: every file failed alone" in run.stdout
    assert "200 mutants + 4 seeds in one ingest" in run.stdout
