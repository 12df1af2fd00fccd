"""Process-wide memory setting for long runs: keep freed memory for reuse (issue 17).

glibc's ``malloc`` hands every block above 32 MB (its largest mmap threshold) back to the
system when it is freed, so each fresh per-bar array of a 10M-bar run (80 MB) is new memory
whose every page faults on first touch. On the shared 2-core VM those faults cost more each as
the process grows: a whole ``Breakdown(target="r_multiple")`` backtest took 4.4 s of system
time at 10M bars against 0.15 s at 1M (29x for 10x the bars). With mmap off and no trimming,
freed blocks stay in the heap and the next array reuses their pages already touched: system
time 1.1 s at 10M, peak RSS lower, user time unchanged (benchmarks/README.md, Scale). The cost:
the process keeps its high-water mark of memory until it exits, which suits a command-line run
(``btc-backtest``: see :func:`backtests.cli` ``main``) and not a library imported into a
long-lived process, so nothing here runs on import.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: Freed memory at the top of the heap is kept up to this many bytes (the largest int mallopt
#: takes): never trimmed in practice.
_KEEP_BYTES = 2**31 - 1


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` serve every block from its heap and never return freed memory to
    the system (``mallopt(M_MMAP_MAX, 0)`` and ``mallopt(M_TRIM_THRESHOLD, 2 GiB)``) for the
    rest of the process.

    Returns:
        True when both settings were applied; False where the C library has no ``mallopt``
        (macOS, musl, Windows) or refused one: nothing is changed there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES) == 1
