"""data.memory.keep_freed_memory: freed large blocks are reused without new page faults (run
in a child process: the setting lasts for the process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys
import numpy as np
from data.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
def faults_of_a_fresh_64mb_array():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(8_000_000)  # 64 MB: above glibc's largest mmap threshold (32 MB)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del a
    return after - before
faults_of_a_fresh_64mb_array()
print(applied, faults_of_a_fresh_64mb_array())
"""


def _child(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=REPO, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    applied, faults = out.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_warm():
    applied, kept_faults = _child("keep")
    _, fresh_faults = _child("default")
    assert applied == "True"
    # by default the 64 MB block goes back to the system and its ~16k pages (or ~32 huge
    # pages) fault again; kept, the second array reuses the first one's pages
    assert kept_faults < 100 and kept_faults < fresh_faults
