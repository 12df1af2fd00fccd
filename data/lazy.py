"""Package names imported on first use (PEP 562), one implementation for ``data``,
``indicators`` and ``backtests``.

Why: ``btc-backtest --help`` and ``import indicators`` must not pay for pandas, TA-Lib or numba
(tests/test_startup.py); the packages still offer ``from data import load`` and the like.
This module imports only the standard library.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Collection, Mapping
from typing import Any


def lazy_names(package: str, names: Mapping[str, str], *,
               functions_named_like_modules: Collection[str] = ()) -> None:
    """Make the package ``package`` (already in ``sys.modules``) resolve each public name of
    ``names`` (name -> the full name of the module defining it) on first use; the value is then
    kept on the package, so later lookups are plain attribute reads.

    ``functions_named_like_modules``: functions that share their name with a submodule
    (``data.resample``, ``indicators.pivots``): importing the submodule would bind the module
    on the package and hide the function, so the import system's binding of those submodules is
    ignored (the modules stay in ``sys.modules``).

    Raises (on lookup): AttributeError for a name the package does not have.
    """
    module = sys.modules[package]

    def __getattr__(name: str) -> Any:  # the PEP 562 hook
        where = names.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where), name)
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:  # the PEP 562 hook
        return sorted({*vars(module), *names})

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
    if functions_named_like_modules:
        shadowed = frozenset(functions_named_like_modules)

        class _Package(types.ModuleType):
            def __setattr__(self, name: str, value: Any) -> None:
                if isinstance(value, types.ModuleType) and name in shadowed:
                    return
                super().__setattr__(name, value)

        module.__class__ = _Package
