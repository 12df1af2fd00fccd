"""Atomic writes for saved results and reports: a reader (or a process killed mid-write) never
sees half a file or half a directory."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file renamed over it; returns the
    path. Parent directories are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # same directory, so the rename is atomic
    return path


def replace_directory(directory: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build a directory with ``fill(tmp_dir)`` beside ``directory``, then swap it in for any
    old one (which is removed); returns ``directory``. A failure inside ``fill`` leaves the old
    directory untouched."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old)
    else:
        tmp.rename(directory)
    return directory
