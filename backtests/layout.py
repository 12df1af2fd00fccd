"""The four top-level packages (``data``, ``indicators``, ``strategies``, ``backtests``) must be
this project's: :func:`check_layout` says so clearly when one is shadowed.

Those short names are what the project's users asked for, and the price is that a file of the
same name next to a notebook or script (``data.py``, or a ``strategies/`` folder with an
``__init__.py``) comes first on ``sys.path`` and hides ours; Python then fails deep inside an
import with "'data' is not a package", or silently runs the wrong code. ``import backtests``
runs :func:`check_layout` first, so that case is one clear ImportError naming the file that
shadows ours and how to fix it. The ``btc-backtest`` command is immune (its ``sys.path[0]`` is
the directory of the script, not the current directory).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

#: The project's top-level packages, in the order data flows through them.
PACKAGES: tuple[str, ...] = ("data", "indicators", "strategies", "backtests")

#: The directory holding the four packages (the repository, or site-packages when installed).
ROOT = Path(__file__).resolve().parents[1]


class ShadowedPackageError(ImportError):
    """A module of the user's (``data.py``...) hides one of this project's packages."""


def _location(name: str) -> str | None:
    """Where ``name`` is (or would be) imported from: a file or folder path, or None."""
    mod = sys.modules.get(name)
    if mod is not None:
        return getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", [])), None)
    spec = importlib.util.find_spec(name)
    if spec is None:
        return None
    if spec.origin not in (None, "namespace"):
        return spec.origin
    return next(iter(spec.submodule_search_locations or []), None)


def check_layout(names: tuple[str, ...] = PACKAGES) -> None:
    """Raise :class:`ShadowedPackageError` unless each of ``names`` resolves to this project's
    package (beside this file's package). Cheap: nothing is imported.
    """
    for name in names:
        where = _location(name)
        if where is None:
            continue  # not installed: the import itself will say so
        path = Path(where).resolve()
        if not path.is_relative_to(ROOT / name):
            raise ShadowedPackageError(
                f"{path} shadows btc-backtest's '{name}' package (installed at {ROOT / name}): "
                f"rename your {path.name}, or run from another directory")
