"""The first run of a compiled kernel: interpret it while it is cheap, compile it for next time.

numba compiles a kernel the first time it is called with new argument types: ~10 s for the main
job's kernels (the S/R engine alone ~5 s), while the same kernels *interpreted* take ~0.3 s on
a few thousand daily bars. :func:`call` therefore runs a kernel's own Python code (the very
function numba compiles, :func:`python_twin`) when all of these hold:

* no compiled version of the kernel is in memory (once one is, every call is compiled, as
  plain numba would: working out the arguments' numba types on each call costs 10-100 us,
  ten times the kernel on daily bars) and none for these argument types is in numba's on-disk
  cache (:func:`compiled_ready`, the same index numba reads: a changed source file is a miss);
* the call is small: ``work`` (about the rows it loops over) is at most :data:`MAX_WORK`;
* this process has interpreted less than :data:`WORK_BUDGET` rows of the kernel (a kernel
  called many times, e.g. in a sweep, is then compiled: it pays for itself; rows rather than
  seconds, so what runs does not depend on the machine's load);
* ``$BTC_BACKTEST_JIT`` is ``auto`` (the default). ``compile``: always the compiled kernel (the
  test suite sets it, so tests exercise the compiled kernels); ``interpret``: always the Python
  code, whatever the size, and nothing compiled in the background (for debugging, and for
  tests/test_jit.py, which checks both give identical results on the real daily data).

Every kernel that ran interpreted is compiled once the process exits, by a detached process
(``python -m data.jit``) that writes numba's cache, so the next run loads machine code.

numba's own cache writes are not safe with two processes saving different signatures of one
function at once: both read the index, pick the same data file name, and the index can end up
pointing at the other signature's machine code. :func:`lock_cache_writes` makes each save
hold a file lock on the function's index and write the data file before the index entry that
names it (a reader never finds an entry whose data is not complete).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filelock
import numba
from llvmlite import ir
from numba.core import caching, cgutils
from numba.core.dispatcher import Dispatcher
from numba.extending import intrinsic, overload

ENV_VAR = "BTC_BACKTEST_JIT"
#: ``auto`` (default): interpret small first calls as described above; ``compile``: always
#: call the compiled kernel (compiling it when it is not cached); ``interpret``: never compile.
MODES = ("auto", "compile", "interpret")
#: Largest ``work`` (rows a kernel loops over) interpreted: ~0.5 s for the S/R engine at this
#: size, a tenth of compiling it.
MAX_WORK = 50_000
#: Rows (``work``) interpreted per kernel and process after which it is compiled instead: ~2.5 s
#: of the S/R engine (its compile: ~5 s), the main job's 24 calls of it are ~75,000 rows.
WORK_BUDGET = 250_000
LOCK_TIMEOUT = 120.0  # seconds a cache write waits for another process's write of that function

_twins: dict[Callable[..., Any], Callable[..., Any]] = {}
_spent: dict[Dispatcher, int] = {}
_ready: set[tuple[Dispatcher, tuple[Any, ...]]] = set()
_pending: dict[tuple[str, str], set[tuple[Any, ...]]] = {}
#: Per kernel ``module.name``: calls the auto policy ran interpreted in this process (and queued
#: for the background compile).
interpreted: dict[str, int] = {}


def mode() -> str:
    """The policy from ``$BTC_BACKTEST_JIT`` (``auto`` when unset)."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{ENV_VAR}={value!r}: use one of {', '.join(MODES)}")
    return value


def python_twin(kernel: Dispatcher) -> Callable[..., Any]:
    """The kernel's Python function, with every kernel it calls also replaced by its twin: the
    same code objects, run by the interpreter (what ``NUMBA_DISABLE_JIT=1`` would run)."""
    f = kernel.py_func
    twin = _twins.get(f)
    if twin is None:
        g = dict(f.__globals__)  # the module's names as they are after its import
        twin = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
        twin.__kwdefaults__ = f.__kwdefaults__
        twin.__doc__ = f.__doc__
        _twins[f] = twin
        for name in _global_names(f.__code__):
            value = g.get(name)
            if isinstance(value, Dispatcher):
                g[name] = python_twin(value)
    return twin


def typed(signature: Any, **options: Any) -> Callable[[Callable[..., Any]], Dispatcher]:
    """``numba.njit(signature, cache=True, **options)``, compiled when a kernel that calls it is
    compiled rather than when its module is imported.

    One signature, as with ``njit(signature)``: a call from compiled code whose constant
    arguments are typed ``Literal[int](0)`` converts to it instead of compiling its own
    specialisation. Deferred: an import, or a run whose kernels are interpreted
    (:func:`call`), compiles nothing (eager signatures cost ~1.3 s of the first run's start-up).
    """
    def decorate(func: Callable[..., Any]) -> Dispatcher:
        disp = numba.njit(cache=True, **options)(func)
        if not isinstance(disp, Dispatcher):  # NUMBA_DISABLE_JIT: the plain function
            return disp
        template = disp.get_call_template

        def get_call_template(args: Any, kws: Any) -> Any:
            if disp._can_compile:  # first use: compile (or load) the one signature, no other
                disp.compile(signature)
                disp.disable_compile()
            return template(args, kws)

        disp.get_call_template = get_call_template  # what numba asks when typing a call to it
        return disp

    return decorate


def prefetch(a: Any, i: int) -> None:
    """Ask the CPU to start loading ``a[i]`` (a 1-D array) into its caches, in compiled code;
    nothing when interpreted (:func:`python_twin`), nothing for ``i`` outside ``a``.

    For a loop over a large array with enough work per element that the hardware's own
    prefetching does not keep ahead of it: call ``prefetch(a, i + PREFETCH_AHEAD)`` at element
    ``i``. Measured here (1M float64, a division per element, the array evicted by other work
    first, as it is when a backtest reaches its metrics): 3.4 -> 1.25 ms; ~0 cost when the
    array is in cache already. A hint only: it changes no value.
    """


#: How many elements ahead of the current one :func:`prefetch` asks for (2 KB of float64:
#: 64 elements ahead helped less, 256 and 1024 alike).
PREFETCH_AHEAD = 256


@intrinsic
def _prefetch_address(typingctx: Any, a: Any, i: Any) -> Any:  # pragma: no cover - compiled
    """LLVM's ``llvm.prefetch`` (read, high locality, data cache) of ``&a[i]``."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                       wraparound=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [cgutils.voidptr_t], fnty)
        builder.call(fn, [builder.bitcast(ptr, cgutils.voidptr_t), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return numba.types.void(a, i), codegen


@overload(prefetch, inline="always")
def _prefetch_compiled(a: Any, i: Any) -> Any:  # pragma: no cover - compiled
    def impl(a: Any, i: Any) -> None:
        if 0 <= i < len(a):
            _prefetch_address(a, i)

    return impl


def _global_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def signature(kernel: Dispatcher, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The argument types numba compiles ``kernel(*args)`` for."""
    return tuple(kernel.typeof_pyval(a) for a in args)


def compiled_ready(kernel: Dispatcher, args: tuple[Any, ...]) -> bool:
    """True when calling ``kernel(*args)`` compiles nothing: a version for these argument types
    is loaded, or numba's cache index (for the current source) has one. True as well when
    numba's internals are not as expected (then nothing is interpreted)."""
    sig = signature(kernel, args)
    if (kernel, sig) in _ready or sig in kernel.overloads:
        return True
    try:
        cache = kernel._cache
        key = cache._index_key(sig, kernel.targetctx.codegen())
        found = key in cache._cache_file._load_index()
    except Exception:  # numba internals of another version: behave as plain numba
        found = True
    if found:
        _ready.add((kernel, sig))
    return found


def call(kernel: Any, *args: Any, work: int) -> Any:
    """``kernel(*args)``, interpreted instead when compiling it now would cost more than running
    it (see the module docstring); ``work``: about how many rows the kernel loops over."""
    policy = mode()
    if not isinstance(kernel, Dispatcher) or policy == "compile":
        return kernel(*args)
    if policy == "interpret":
        return python_twin(kernel)(*args)
    if work > MAX_WORK or kernel.overloads:
        return kernel(*args)
    spent = _spent.get(kernel, 0) + work
    if spent > WORK_BUDGET or compiled_ready(kernel, args):
        return kernel(*args)
    _spent[kernel] = spent
    out = python_twin(kernel)(*args)
    name = (kernel.py_func.__module__, kernel.py_func.__name__)
    if not _pending:
        atexit.register(_compile_in_background)
    _pending.setdefault(name, set()).add(signature(kernel, args))
    interpreted[".".join(name)] = interpreted.get(".".join(name), 0) + 1
    return out


def reset() -> None:
    """Forget what this process interpreted: the budgets, the counts and the kernels queued for
    the background compile at exit."""
    _spent.clear()
    _pending.clear()
    interpreted.clear()


def _compile_in_background() -> None:
    """At exit: start ``python -m data.jit FILE`` detached, to compile and cache the kernels this
    process interpreted (a one-line note on stderr says so)."""
    jobs = [(mod, name, sig) for (mod, name), sigs in _pending.items() for sig in sigs
            if sig not in _loaded(mod, name).overloads]  # not compiled here meanwhile
    if not jobs:
        return
    path = ""
    try:
        fd, path = tempfile.mkstemp(prefix="btc-backtest-jit-", suffix=".pkl")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(jobs, f)
        root = str(Path(__file__).resolve().parents[1])  # the tree these kernels come from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        proc = subprocess.Popen([sys.executable, "-m", "data.jit", path], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                cwd=tempfile.gettempdir())
    except OSError as exc:
        if path:
            Path(path).unlink(missing_ok=True)
        print(f"note: could not start compiling kernels in the background ({exc}); the next "
              "run compiles them", file=sys.stderr)
        return
    print(f"note: first run: {len(jobs)} kernel(s) ran interpreted; compiling them in the "
          f"background for the next runs (pid {proc.pid}, cache {_cache_folder(jobs)})",
          file=sys.stderr)


def _cache_folder(jobs: list[tuple[str, str, tuple[Any, ...]]]) -> str:
    """Where numba caches these kernels: the configured folder, or the fallback numba chose when
    that one cannot be written (next to the source, or its own user folder)."""
    try:
        paths = sorted({_loaded(module, name)._cache.cache_path for module, name, _ in jobs})
    except AttributeError:  # another numba version
        return os.environ.get("NUMBA_CACHE_DIR", "numba's default")
    return paths[0] if len(paths) == 1 else os.path.commonpath(paths)


def _loaded(module: str, name: str) -> Dispatcher:
    return getattr(importlib.import_module(module), name)


def compile_jobs(jobs: list[tuple[str, str, tuple[Any, ...]]]) -> int:
    """Compile (and so cache) each ``(module, kernel name, argument types)``; one process at a
    time per cache folder (a second waits, then finds them cached). Returns how many compiled."""
    folder = Path(os.environ.get("NUMBA_CACHE_DIR") or tempfile.gettempdir())
    done = 0
    with _lock(folder / ".compile.lock"):
        for module, name, sig in jobs:
            try:
                kernel = _loaded(module, name)
                hits = sum(kernel.stats.cache_hits.values())
                kernel.compile(sig)
            except Exception:  # e.g. the source changed since: compile the others still
                continue
            done += sum(kernel.stats.cache_hits.values()) == hits
    return done


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """A file lock at ``path``; without one (folder not writable) the body runs unlocked."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path), timeout=LOCK_TIMEOUT)
        lock.acquire()
    except (OSError, filelock.Timeout):
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _locked_save(self: caching.IndexDataCacheFile, key: Any, data: Any) -> None:
    """numba's ``IndexDataCacheFile.save`` under a lock, data file first (module docstring)."""
    with _lock(Path(self._index_path + ".lock")):
        overloads = self._load_index()
        data_name = overloads.get(key)
        if data_name is None:
            existing = set(overloads.values())
            number = 1
            while self._data_name(number) in existing:
                number += 1
            data_name = self._data_name(number)
        self._save_data(data_name, data)
        if overloads.get(key) != data_name:
            overloads[key] = data_name
            self._save_index(overloads)


def lock_cache_writes() -> None:
    """Make numba's cache saves in this process safe with other processes saving (idempotent;
    nothing changes if numba's cache class is not the one this was written for)."""
    cls = caching.IndexDataCacheFile
    needed = ("_load_index", "_save_index", "_save_data", "_data_name", "_index_path")
    if cls.save is not _locked_save and all(hasattr(cls, n) or n == "_index_path"
                                            for n in needed):
        cls.save = _locked_save


lock_cache_writes()


def main(argv: list[str] | None = None) -> int:
    """``python -m data.jit FILE``: compile the pickled jobs in FILE (deleted when read)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m data.jit JOBS.pkl", file=sys.stderr)
        return 2
    path = Path(argv[0])
    with path.open("rb") as f:
        jobs = pickle.load(f)
    path.unlink(missing_ok=True)
    import data.cache

    data.cache.configure_numba()
    compile_jobs(jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
