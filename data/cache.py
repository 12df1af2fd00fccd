"""Where btc-backtest keeps what it can always rebuild: compiled numba kernels and the look-ahead
audit's verdicts.

The root is ``$BTC_BACKTEST_CACHE`` when set, else the user cache directory
(``platformdirs.user_cache_dir``: ``~/.cache/btc-backtest`` on Linux, or ``$XDG_CACHE_HOME``),
else, when neither can be written, ``btc-backtest-cache-<uid>`` in the temporary directory.

numba caches compiled kernels next to their source files by default: for a pip install that is
``site-packages``, which may be read-only or shared by several users (numba then falls back to its
own user folder, and fails the import when it finds none it can write). :func:`configure_numba`
points numba at ``<root>/numba`` instead, unless the user set ``NUMBA_CACHE_DIR`` (honoured as
is). It sets ``NUMBA_CACHE_DIR`` for the process (subprocesses such as sweep workers inherit it),
so other code in the same process that caches numba functions uses that folder too. When that
folder cannot be written numba itself falls back (next to the source, then its own user folder).

This module imports nothing heavy: ``backtests`` and ``indicators`` call
:func:`configure_numba` on import, and ``btc-backtest --help`` imports ``backtests``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV_VAR = "BTC_BACKTEST_CACHE"
APP_NAME = "btc-backtest"
NUMBA_ENV = "NUMBA_CACHE_DIR"


def writable_dir(path: Path) -> bool:
    """True when ``path`` exists or can be created, and a file can really be created in it
    (permission bits alone say nothing for root)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError:
        return False
    return True


def preferred_root() -> Path:
    """``$BTC_BACKTEST_CACHE``, else the user cache directory (not created here)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs  # a few ms

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def cache_root() -> Path:
    """The cache root (see the module docstring), created if missing: the preferred one when
    it can be written, else the per-user folder in the temporary directory."""
    preferred = preferred_root()
    if writable_dir(preferred):
        return preferred
    fallback = Path(tempfile.gettempdir()) / f"{APP_NAME}-cache-{os.getuid()}"
    writable_dir(fallback)  # nothing writable: callers then fail to write and carry on
    return fallback


def configure_numba() -> str:
    """Make numba cache compiled kernels in ``<root>/numba`` (:func:`preferred_root`, not created
    until numba writes there) unless ``NUMBA_CACHE_DIR`` is set already; return the folder numba
    is told to use.

    Called by ``indicators`` and ``backtests`` on import, before any kernel is compiled: numba
    reads the folder when a ``cache=True`` function is defined.
    """
    current = os.environ.get(NUMBA_ENV)
    if current:
        return current
    folder = str(preferred_root() / "numba")
    os.environ[NUMBA_ENV] = folder
    config = sys.modules.get("numba.core.config")
    if config is not None and not getattr(config, "CACHE_DIR", ""):
        config.CACHE_DIR = folder  # numba imported before us: its config was read already
    return folder
