"""The BTC data layer: loading, validation, the canonical frame and resampling.

The names below are imported from their modules on first use (PEP 562): ``import data`` and
``from data.errors import DataError`` stay free of pandas (~0.5 s), which ``indicators`` relies
on to import quickly (tests/test_startup.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data.lazy import lazy_names

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


lazy_names(__name__, _LAZY, functions_named_like_modules=("resample", "validate"))
