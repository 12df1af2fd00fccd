"""Safe output folders and atomic files for results and reports.

Rules (issue 12: nothing lost, nothing silently wrong):

* Never delete or overwrite what btc-backtest did not write. A folder we write carries a run
  record, :data:`RUN_RECORD` (``btc-backtest-run.json``): a run id, the time, and the SHA-256 of
  every file of that run. A folder without it, or holding names the record does not list, is not
  ours: a non-empty one is refused (:class:`OutputFolderError`, saying how to proceed) unless
  ``force=True`` (CLI ``--force``), and even then only our own names are written into it, next
  to the user's files, and a name of the user's that we would need is refused.
* Our own folder is replaced whole and atomically: the new run is built in a uniquely named
  temporary folder beside it and swapped in with one ``renameat2(RENAME_EXCHANGE)`` (two renames
  where the kernel lacks it), so a reader or a process killed at any moment sees the old run or
  the new run, never a mix (and never the old strategy folders of a run with fewer strategies).
* Temporary folders and files are named ``.<name>.btc-tmp-<pid>-<random>``; those of processes
  that no longer run (killed) are removed by the next write beside them.
* :func:`verify_run_folder` checks a folder against its run record (``btc-backtest report``
  does, before reading anything): every file of the run present and unchanged, no result folder
  of another run mixed in.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from data.frame import DataError

RUN_RECORD = "btc-backtest-run.json"
_KIND = "btc-backtest-output"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.btc-(?:tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}(?:\.tmp)?$")


class OutputFolderError(DataError):
    """An output folder that cannot be written without losing someone's files (exit code 2)."""


def temporary_name(name: str, kind: str = "tmp") -> str:
    """A unique hidden name beside ``name`` for a temporary file or folder; the process id in
    it lets :func:`remove_stale_temporaries` tell a killed writer's leftovers."""
    return f".{name}.btc-{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a uniquely named temporary file renamed over
    it (two writers never share a temporary name); returns the path. Parent folders are
    created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = path.with_name(temporary_name(path.name) + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # same folder, so the rename is atomic
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove our temporary files/folders in ``folder`` whose process is gone (killed mid-write);
    return what was removed. Only names of our own pattern are touched."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TMP_RE.match(p.name)
        if not m or _pid_alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in blocks: any size)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_run_record(folder: str | Path) -> dict[str, Any] | None:
    """The run record of ``folder``, or None when it has none (or not a valid one)."""
    path = Path(folder) / RUN_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("kind") != _KIND:
        return None
    if not isinstance(record.get("entries"), list) or not isinstance(record.get("files"), dict):
        return None
    return record


def _foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that btc-backtest did not write there (all of them when the folder
    has no run record). Our nested output folders (``report DIR`` writes ``DIR/rerendered``)
    and our temporaries count as ours."""
    record = read_run_record(folder)
    ours = set(record["entries"]) | {RUN_RECORD} if record else set()
    foreign = []
    for p in sorted(folder.iterdir()):
        if p.name in ours or _TMP_RE.match(p.name):
            continue
        if p.is_dir() and not p.is_symlink() and read_run_record(p) is not None \
                and not _foreign_entries(p):
            continue
        foreign.append(p.name)
    return foreign


def _write_record(folder: Path, run_id: str, command: str) -> None:
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != RUN_RECORD]
    # hashlib releases the GIL on large blocks: two threads hash the ~330 MB of a 1M-bar run's
    # folder in ~0.18 s instead of ~0.28 s on two cores (no slower with one core busy).
    with ThreadPoolExecutor(max_workers=2) as pool:
        files = dict(zip((p.relative_to(folder).as_posix() for p in paths),
                         pool.map(sha256_file, paths), strict=True))
    record = {
        "kind": _KIND,
        "run_id": run_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "entries": sorted(p.name for p in folder.iterdir() if p.name != RUN_RECORD),
        "files": files,
    }
    (folder / RUN_RECORD).write_text(json.dumps(record, indent=1), encoding="utf-8")


_RENAME_EXCHANGE = 2
_libc: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2``); False where unsupported."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _libc.renameat2  # noqa: B018 (probe: glibc >= 2.28)
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    at_fdcwd = -100
    rc = _libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system or kernel cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_directory(
    directory: str | Path,
    fill: Callable[[Path], None],
    *,
    force: bool = False,
    command: str = "",
    option: str = "--out",
) -> Path:
    """Write an output folder: ``fill(tmp)`` builds it in a temporary folder beside
    ``directory``, a run record is added, and it is put in place; returns ``directory``.

    * ``directory`` missing or empty: the new folder is renamed into place.
    * ``directory`` is one of ours (a run record listing everything in it): swapped atomically
      with the new one; the old run is then removed.
    * anything else non-empty (and the current folder or one of its parents): refused with
      :class:`OutputFolderError` unless ``force``; with ``force`` our files are written into it
      beside the user's (ours from an earlier run are replaced, the user's are never touched;
      one of ours whose name a user file already takes is refused).

    A failure inside ``fill`` leaves ``directory`` untouched. ``option`` is the command-line
    option named in messages.

    Raises:
        OutputFolderError: the folder cannot be written without touching the user's files.
    """
    directory = Path(directory)
    mode, target = _plan(directory, force, option)
    shown = str(directory)
    # In place, build inside the folder itself: its parent may not be writable.
    parent = target if mode == "inplace" else target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(parent)
        tmp = parent / temporary_name(target.name or "root")
        tmp.mkdir()
    except OSError as exc:
        raise OutputFolderError(f"{option} {shown}: cannot create the folder "
                                f"({exc.strerror or exc})",
                                hint=f"choose a writable location with {option}") from None
    try:
        fill(tmp)
        _write_record(tmp, uuid.uuid4().hex[:12], command)
        placed = False
        if mode == "new":
            try:
                os.rename(tmp, target)  # also replaces an empty existing folder
                placed = True
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                # Another command with the same folder finished first: plan again (a run of
                # ours is swapped like any other; anything else is refused).
                mode, target = _plan(directory, force, option)
        if placed:
            pass
        elif mode == "inplace":
            _merge_into(tmp, target, option, shown)
        elif mode == "swap":
            if not _exchange(tmp, target):
                old = target.with_name(temporary_name(target.name, "old"))
                os.rename(target, old)
                os.rename(tmp, target)
                tmp = old
        else:
            os.rename(tmp, target)
    except OSError as exc:
        raise OutputFolderError(f"{option} {shown}: cannot write the results "
                                f"({exc.strerror or exc})",
                                hint=f"choose a writable location with {option}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)  # the old run, or the unused build
    return directory


def check_output_folder(directory: str | Path, *, force: bool = False,
                        option: str = "--out") -> None:
    """Fail early (before any work) when ``directory`` could not be written by
    :func:`replace_directory`: not ours and not empty without ``force``, the current folder,
    a file, or a place that cannot be written.

    Raises:
        OutputFolderError: naming ``option`` and how to proceed.
    """
    mode, target = _plan(Path(directory), force, option)
    where = target if mode == "inplace" else target.parent
    try:
        # Really try (permission bits say nothing to root, and nothing about /proc or a
        # read-only mount): make the parent and a temporary folder in it, then remove it.
        where.mkdir(parents=True, exist_ok=True)
        probe = where / temporary_name(target.name or "root")
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise OutputFolderError(f"{option} {directory}: cannot write there "
                                f"({exc.strerror or exc})",
                                hint=f"choose a writable location with {option}") from None


def _plan(directory: Path, force: bool, option: str) -> tuple[str, Path]:
    """How :func:`replace_directory` would write ``directory``: ``("new" | "swap" | "inplace",
    absolute target)``."""
    target = Path(os.path.abspath(directory))
    shown = str(directory)
    cwd = Path.cwd().resolve()
    resolved = target.resolve()
    if target.is_symlink():
        target = resolved  # replace the folder it points to, never the link itself
    if target.exists() and not target.is_dir():
        raise OutputFolderError(f"{option} {shown}: exists and is not a folder",
                                hint="choose a folder path (a new one is created)")
    if cwd == resolved or cwd.is_relative_to(resolved):
        if not force:
            what = "the current folder" if cwd == resolved else "a parent of the current folder"
            raise OutputFolderError(
                f"{option} {shown} is {what}: results replace their folder as a whole, which "
                "cannot be done to a folder you are working in",
                hint=f"write to a new folder, e.g. {option} results/run1 (or pass --force to put "
                "the results into it beside your files)")
        return "inplace", resolved
    if not (target.is_dir() and any(target.iterdir())):
        return "new", target
    foreign = _foreign_entries(target)
    if not foreign:
        return "swap", target
    if force:
        return "inplace", target
    listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3
                                       else "")
    raise OutputFolderError(
        f"{option} {shown} holds files btc-backtest did not write ({listed}); refusing to "
        "replace them",
        hint=f"choose a new folder with {option}, or pass --force to put the results into it "
        "beside those files (they are left alone)")


def _merge_into(tmp: Path, target: Path, option: str, shown: str) -> None:
    """``--force`` into a folder with the user's files: move our entries in one by one. The
    run record goes first (removed) and last (written), so an interrupted merge leaves a folder
    that :func:`verify_run_folder` refuses rather than a silent mix."""
    old = read_run_record(target)
    old_ours = set(old["entries"]) if old else set()
    new = sorted(p.name for p in tmp.iterdir() if p.name != RUN_RECORD)
    clash = [n for n in new if (target / n).exists() and n not in old_ours]
    if old is None and (target / RUN_RECORD).exists():
        clash.insert(0, RUN_RECORD)  # a file of that name that is not our record
    if clash:
        raise OutputFolderError(
            f"{option} {shown}: {', '.join(clash[:3])} already exist(s) there and btc-backtest "
            "did not write them; refusing to overwrite",
            hint=f"move those files away, or choose a new folder with {option}")
    (target / RUN_RECORD).unlink(missing_ok=True)
    for name in sorted(old_ours | set(new)):
        dest = target / name
        if name in old_ours and (dest.exists() or dest.is_symlink()):
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            else:
                dest.unlink()
        if name in new:
            os.rename(tmp / name, dest)
    os.rename(tmp / RUN_RECORD, target / RUN_RECORD)


def verify_run_folder(folder: str | Path) -> dict[str, Any] | None:
    """Check that ``folder`` holds one whole run; return its run record (None for a folder
    without one, e.g. a single saved result).

    Raises:
        DataError: a file of the run is missing or changed, or a result folder of another run
            is mixed in (the run id is named).
    """
    folder = Path(folder)
    record = read_run_record(folder)
    if record is None:
        return None
    run = record.get("run_id", "?")
    for rel, digest in record["files"].items():
        path = folder / rel
        if not path.is_file():
            raise DataError(
                f"{rel} of run {run} is missing: the folder is incomplete",
                source=str(folder), hint="re-run the command that wrote it")
        if sha256_file(path) != digest:
            raise DataError(
                f"{rel} was changed after run {run} wrote it: the folder mixes runs",
                source=str(folder), hint="re-run the command that wrote it into a new folder")
    listed = set(record["entries"])
    for p in sorted(folder.iterdir()):
        if p.is_dir() and p.name not in listed and (p / "results.json").is_file():
            raise DataError(
                f"result folder {p.name} is not part of run {run}: the folder mixes runs",
                source=str(folder), hint="pass one result folder, or re-run into a new folder")
    return record
