"""History before the trading window is warm-up: what each indicator needs and what it had.

``--start`` (and ``start=`` in :func:`backtests.run`) selects the **trading** window; every
indicator is computed on all the bars before it, as freqtrade does with its startup candles, and
positions open only inside the window. :func:`window_start` finds the window's first bar;
:func:`warmup_report` compares the history before it with what each indicator needs and says,
per indicator, when it is too short (so it is never silently short).

Needs, in bars of the data's timeframe unless said otherwise:

* RSI and ATR (Wilder smoothing, weight ``1/period``): ``period`` seed bars plus the bars until
  the seed's weight falls below 1 %;
* 200-week EMA: :func:`indicators.htf.htf_ema_warmup` (200 seed weeks plus the weeks until the
  seed's weight falls below 1 %: 661 weeks), counted in weeks of history;
* pivots: ``left + right + 1`` bars (a pivot is confirmed ``right`` bars after it);
* S/R zones and flips: zones are built from every confirmed pivot before the bar and weighted
  with a half-life of 365 bars, so with less history than one half-life older levels are missing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from data.frame import DataError, timeframe_of
from indicators.htf import htf_ema_warmup

#: Weight left to the seed of a smoothed indicator when it counts as settled.
TOLERANCE = 0.01
#: Half-life of the S/R zone strength, bars (indicators.levels.support_resistance's default).
SR_HALF_LIFE = 365
WEMA_PERIOD = 200


@dataclass(frozen=True)
class WarmupCheck:
    """One indicator's warm-up: ``needs`` and ``had`` in ``unit`` ("bars" or "weeks")."""

    indicator: str
    needs: int
    had: int
    unit: str
    why: str

    @property
    def short(self) -> bool:
        """Whether the history before the window is shorter than the indicator needs."""
        return self.had < self.needs

    def message(self) -> str:
        """One line for the terminal, the report and the results."""
        return (f"{self.indicator}: {self.had:,} {self.unit} of history before the window, "
                f"needs {self.needs:,} ({self.why})")


def _wilder_settle(period: int) -> int:
    # Smallest n with (1 - 1/period)**n < TOLERANCE (period 1 has no memory).
    return 0 if period <= 1 else math.floor(math.log(TOLERANCE) / math.log1p(-1.0 / period)) + 1


def _param(strategy: object, name: str, default: int) -> int:
    p = getattr(strategy, "p", None)
    value = getattr(p, name, default) if p is not None else default
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def window_start(df: pd.DataFrame, start: object) -> int:
    """Position of the first bar opening at or after ``start`` (0 for None).

    Raises:
        DataError: ``start`` is not a date, or fewer than 2 bars are left from it.
    """
    if start is None:
        return 0
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError):
        raise DataError(f"start {start!r} is not a date", hint="use YYYY-MM-DD") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    pos = int(df.index.searchsorted(ts, side="left"))
    if pos > len(df) - 2:
        span = f"{df.index[0]:%Y-%m-%d} to {df.index[-1]:%Y-%m-%d}" if len(df) else "nothing"
        raise DataError(f"fewer than 2 bars from start {ts:%Y-%m-%d}",
                        hint=f"the data spans {span}; choose an earlier --start")
    return pos


def warmup_checks(df: pd.DataFrame, pos: int, strategy: object = None) -> list[WarmupCheck]:
    """What each indicator needs before bar ``pos`` of ``df`` and what it had.

    Periods are read from the strategy's parameters when it declares them (``rsi_period``,
    ``atr_period``, ``pivot_bars``), else the defaults of :func:`indicators.signals.signal_frame`.
    """
    rsi_p = _param(strategy, "rsi_period", 14)
    atr_p = _param(strategy, "atr_period", 14)
    piv = _param(strategy, "pivot_bars", 5)
    wema = htf_ema_warmup(WEMA_PERIOD, "1w", TOLERANCE)
    # Whole weeks of history before the window (the weekly EMA's own unit).
    weeks = int((df.index[pos] - df.index[0]) // pd.Timedelta(weeks=1)) if pos else 0
    out = []
    for name, p in ((f"RSI({rsi_p})", rsi_p), (f"ATR({atr_p})", atr_p)):
        settle = _wilder_settle(p)
        out.append(WarmupCheck(name, p + settle, pos, "bars",
                               f"{p} seed bars + {settle} until the seed weighs < 1 %"))
    out.append(WarmupCheck(f"{WEMA_PERIOD}-week EMA", wema.meaningful_bars, weeks, "weeks",
                           f"{wema.seed_bars} seed weeks + {wema.settle_bars} until the seed "
                           "weighs < 1 %"))
    out.append(WarmupCheck(f"pivots ({piv} bars each side)", 2 * piv + 1, pos, "bars",
                           "a pivot is confirmed only after its right-hand bars"))
    out.append(WarmupCheck("S/R zones and flips", SR_HALF_LIFE, pos, "bars",
                           f"zones come from every earlier pivot, weighted with a "
                           f"{SR_HALF_LIFE}-bar half-life; older levels are missing"))
    return out


def warmup_report(df: pd.DataFrame, pos: int, strategy: object = None) -> dict[str, Any]:
    """The warm-up record saved with a result (``result.data["warmup"]``).

    Returns a JSON-friendly dict: ``window_start`` (ISO time of the first trading bar),
    ``history_bars`` (bars before it), ``history_from`` (first bar used for warm-up, or None),
    ``timeframe``, ``checks`` (one dict per indicator: indicator, needs, had, unit, why, short)
    and ``warnings`` (one line per indicator with too little history; only when the window
    starts after the first bar, i.e. a start was given: the first bars of any data are warm-up).
    """
    checks = warmup_checks(df, pos, strategy)
    cut = pos > 0
    try:
        tf: str | None = timeframe_of(df)
    except DataError:
        tf = None
    return {
        "window_start": df.index[pos].isoformat(),
        "history_bars": int(pos),
        "history_from": df.index[0].isoformat() if cut else None,
        "timeframe": tf,
        "checks": [{**asdict(c), "short": c.short} for c in checks],
        "warnings": [f"too little history for the {c.message()}" for c in checks
                     if cut and c.short],
    }
