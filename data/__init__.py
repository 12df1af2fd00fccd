"""The BTC data layer: loading, validation, the canonical frame and resampling.

The names below are imported from their modules on first use (PEP 562): ``import data`` and
``from data.errors import DataError`` stay free of pandas (~0.5 s), which ``indicators`` relies
on to import quickly (tests/test_startup.py).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for readers and tools
    from data.errors import DataError
    from data.frame import (
        OHLCV,
        check_canonical,
        format_timeframe,
        infer_timeframe,
        parse_timeframe,
        timeframe_of,
        to_canonical,
    )
    from data.loaders import FORMATS, detect_format, load, validate_file
    from data.resample import drop_incomplete, period_start, resample
    from data.validate import ValidationReport, validate

#: Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "DataError": "data.errors",
    **dict.fromkeys(("OHLCV", "check_canonical", "format_timeframe", "infer_timeframe",
                     "parse_timeframe", "timeframe_of", "to_canonical"), "data.frame"),
    **dict.fromkeys(("FORMATS", "detect_format", "load", "validate_file"), "data.loaders"),
    **dict.fromkeys(("drop_incomplete", "period_start", "resample"), "data.resample"),
    **dict.fromkeys(("ValidationReport", "validate"), "data.validate"),
}

__all__ = [
    "FORMATS",
    "OHLCV",
    "DataError",
    "ValidationReport",
    "check_canonical",
    "detect_format",
    "drop_incomplete",
    "format_timeframe",
    "infer_timeframe",
    "load",
    "parse_timeframe",
    "period_start",
    "resample",
    "timeframe_of",
    "to_canonical",
    "validate",
    "validate_file",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """``resample`` and ``validate`` are functions named like their modules: importing the
    submodule would bind the module on the package and hide the function, so the import system's
    binding of those two submodules is ignored (their modules stay in sys.modules)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in ("resample", "validate"):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
