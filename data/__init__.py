"""The BTC data layer: loading, validation, the canonical frame and resampling."""

from data.frame import (
    OHLCV,
    DataError,
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
