"""Find a strategy class by built-in name or as ``path/to/file.py:ClassName`` (a user's file)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from strategies.base import Strategy, did_you_mean
from strategies.native import backtrader_strategy, is_backtrader_strategy


class StrategyLoadError(ValueError):
    """The strategy spec names no usable Strategy subclass (message says why and how to fix)."""


def builtin_strategies() -> dict[str, type[Strategy]]:
    """The built-in strategies by name."""
    from strategies.bounce import OversoldBounce
    from strategies.breakdown import Breakdown

    return {cls.name: cls for cls in (Breakdown, OversoldBounce)}


#: Strategy files are imported as modules named with this prefix. Other processes cannot import
#: them by name, so distributed executors ship their classes by value.
USER_MODULE_PREFIX = "user_strategy_"


def load_strategy(spec: str) -> type[Strategy]:
    """Return the Strategy subclass named by ``spec``.

    ``spec`` is a built-in name (``"breakdown"``, ``"oversold_bounce"``) or
    ``"path/to/file.py:ClassName"``; the file is imported as a fresh module (it may import
    ``strategies.base`` and anything installed). ``"path/to/file.py"`` alone works when the file
    defines exactly one strategy class. A ``backtrader.Strategy`` subclass is accepted as is and
    returned wrapped by :func:`strategies.native.backtrader_strategy` (it runs on backtrader).

    Raises:
        StrategyLoadError: unknown name, missing file, import error, missing class (listing the
            Strategy subclasses the file does define) or a class that is not a Strategy.
    """
    spec = str(spec).strip()
    builtins = builtin_strategies()
    name = spec.replace("-", "_")  # oversold-bounce and oversold_bounce are the same strategy
    if name in builtins:
        return builtins[name]
    path_part, _, cls_name = spec.partition(":") if ":" in spec and not _is_drive(spec) else (
        spec, "", "")
    if not path_part.endswith(".py"):
        raise StrategyLoadError(
            f"unknown strategy {spec!r}" + did_you_mean(spec, builtins, "built-in strategies")
            + " (fix: `btc-backtest strategies` lists them; your own: path/to/file.py:ClassName)"
        )
    path = Path(path_part).expanduser()
    if not path.is_file():
        raise StrategyLoadError(f"strategy file {path} not found (spec {spec!r})")
    mod_name = f"{USER_MODULE_PREFIX}{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise StrategyLoadError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module  # dataclasses and pickling need the module registered
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise StrategyLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    found = {name: obj for name, obj in vars(module).items()
             if inspect.isclass(obj) and obj.__module__ == mod_name
             and ((issubclass(obj, Strategy) and obj is not Strategy)
                  or is_backtrader_strategy(obj))}
    if not cls_name:
        if len(found) != 1:
            raise StrategyLoadError(
                f"{path} defines {len(found)} strategy classes "
                f"({', '.join(sorted(found)) or 'none'}); name one as {path}:ClassName"
            )
        return _as_strategy(next(iter(found.values())))
    obj = getattr(module, cls_name, None)
    if obj is None:
        raise StrategyLoadError(
            f"{path} has no class {cls_name!r}; Strategy subclasses defined there: "
            f"{', '.join(sorted(found)) or 'none'}"
        )
    if is_backtrader_strategy(obj):
        return _as_strategy(obj)
    if not (inspect.isclass(obj) and issubclass(obj, Strategy)):
        raise StrategyLoadError(
            f"{path}:{cls_name} is not a subclass of strategies.base.Strategy or "
            f"backtrader.Strategy"
        )
    return obj


def _as_strategy(cls: type) -> type[Strategy]:
    return backtrader_strategy(cls) if is_backtrader_strategy(cls) else cls


def _is_drive(spec: str) -> bool:
    # "C:\\x.py" on Windows: a colon right after a drive letter is not a class separator
    return len(spec) > 2 and spec[1] == ":" and spec[0].isalpha() and spec.count(":") == 1
