"""A market report's "technical outlook" box, computed from candles alone, as of any bar.

``outlook(df, at=None)`` truncates the frame at ``at`` first (so nothing later is used) and
returns an :class:`Outlook`: price and changes, "lowest/highest since", the immediate resistance
(and whether it is a former support), the immediate and the critical support (with 200-week-EMA
confluence), RSI and its state, trend/momentum against EMA 50/200 and the 200-week EMA, and the
next levels beyond. ``Outlook.text()`` renders it; ``Outlook.to_dict()`` is JSON-safe.

Definitions (all documented defaults can be changed through ``outlook(**params)``):

* changes: close vs the previous bar's close, and vs the last close at or before 7 and 30
  calendar days earlier (None when the data does not reach back that far);
* lowest since: the as-of bar's low (else its close) is the lowest since the last earlier bar
  whose low (close) was at or below it, reported when that bar is more than ``since_days`` (30)
  days back; ``lowest_on_record`` when no earlier bar was as low (and the data covers more than
  ``since_days``). Highest since is the mirror image with highs;
* levels: :func:`indicators.levels.support_resistance` zones with ``min_touches=2`` by default
  (single-pivot zones are too many to be worth a line in a report). Immediate resistance/support
  = nearest zone above/below the close. Critical support = the strongest of the
  ``critical_candidates`` (3) nearest supports within ``critical_within_pct`` (15%) of the
  close, ties to the nearer one (the nearest support when none is that close). Next level
  below = the support under the critical support; next above = the resistance over the
  immediate one;
* confluence: the zone's band is within ``confluence_pct`` (3%) of the closed-mode 200-week EMA;
* trend: EMA 50/200 over the frame's own bars (daily EMAs on daily data); slope = change of the
  EMA over ``slope_bars`` (10) bars, and of the 200-week EMA over 28 days: ``up`` above
  +``flat_pct`` (0.5%), ``down`` below -``flat_pct``, else ``flat``. ``bullish`` when the close is
  above both EMAs and EMA 50 is rising, ``bearish`` when below both and EMA 50 is falling, else
  ``mixed``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from data.frame import DataError, to_canonical
from indicators.core import ema as ta_ema
from indicators.core import rsi as ta_rsi
from indicators.levels import Levels, cut_frame, support_resistance
from indicators.liquidation import liquidated_above
from indicators.signals import check_rsi_thresholds, oversold, weekly_ema_or_nan

__all__ = ["Outlook", "OutlookLevel", "outlook"]

_FLIP_NOTES = {
    "support_to_resistance": "previous support flipped to resistance",
    "resistance_to_support": "previous resistance flipped to support",
}


@dataclass
class OutlookLevel:
    """One zone as the outlook reports it (prices in quote currency, distance in % of close)."""

    centre: float
    low: float
    high: float
    touches: int
    strength: float
    distance_pct: float
    origin: str
    flip: str | None = None
    flipped: bool = False  # a former support now resistance (or the reverse), as its role says
    note: str | None = None
    wema_confluence: bool = False
    last_touch: pd.Timestamp | None = None


@dataclass
class Outlook:
    """The technical outlook as of ``as_of`` (see the module docstring for every definition)."""

    as_of: pd.Timestamp
    timeframe: str
    last: float
    change_1bar_pct: float | None
    change_7d_pct: float | None
    change_30d_pct: float | None
    bar_low: float
    bar_high: float
    lowest_since: pd.Timestamp | None
    lowest_since_by: str | None  # "low" or "close"
    lowest_on_record: bool
    highest_since: pd.Timestamp | None
    highest_since_by: str | None
    highest_on_record: bool
    resistance: OutlookLevel | None
    support: OutlookLevel | None
    critical_support: OutlookLevel | None
    next_below: OutlookLevel | None
    next_above: OutlookLevel | None
    rsi: float | None
    rsi_period: int
    rsi_state: str | None
    ema50: float | None
    ema200: float | None
    wema200: float | None
    ema50_slope: str | None
    ema200_slope: str | None
    wema200_slope: str | None
    dist_wema_pct: float | None
    trend: str
    data_start: pd.Timestamp
    params: dict[str, Any] = field(default_factory=dict)
    #: every long opened at a close of the last 30 days above this leverage is liquidated by
    #: this bar's low (None: some would survive any leverage); indicators.liquidation model
    longs_liquidated_above: float | None = None

    # ---------------------------------------------------------------- rendering
    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-safe values (ISO timestamps, None for missing numbers)."""
        return _jsonable(asdict(self))

    def text(self) -> str:
        """A few lines like a market report's technical-outlook box."""
        p = _fmt_price
        lines = [f"Technical outlook as of {self.as_of:%Y-%m-%d %H:%M} UTC ({self.timeframe} bars)"]
        chg = ", ".join(
            f"{_fmt_pct(v)} {lbl}"
            for v, lbl in ((self.change_1bar_pct, "1 bar"), (self.change_7d_pct, "7 days"),
                           (self.change_30d_pct, "30 days"))
            if v is not None
        )
        lines.append(f"Price {p(self.last)}" + (f" ({chg})" if chg else ""))
        ext = self.extreme_text()
        if ext:
            lines.append(ext[0].upper() + ext[1:])
        if self.resistance is not None:
            lines.append("Immediate resistance: " + _level_text(self.resistance))
        else:
            lines.append("Immediate resistance: none above (price discovery)")
        if self.support is not None:
            lines.append("Immediate support: " + _level_text(self.support))
        if self.critical_support is not None and self.critical_support != self.support:
            lines.append("Critical support: " + _level_text(self.critical_support))
        if self.support is None:
            lines.append("Support: none below in the data")
        if self.wema200 is not None:
            lines.append(f"200-week EMA {p(self.wema200)} ({_fmt_pct(self.dist_wema_pct)} from "
                         f"price, {self.wema200_slope})")
        if self.rsi is not None:
            lines.append(f"RSI({self.rsi_period}) {self.rsi:.1f}: "
                         f"{(self.rsi_state or '').replace('_', ' ')}")
        mom = []
        for name, v, s in (("EMA 50", self.ema50, self.ema50_slope),
                           ("EMA 200", self.ema200, self.ema200_slope)):
            if v is not None:
                side = "above" if self.last > v else "below"
                mom.append(f"{side} {name} {p(v)} ({s})")
        lines.append(f"Trend {self.trend}" + (": price " + ", ".join(mom) if mom else ""))
        if self.longs_liquidated_above is not None:
            lines.append(f"Longs opened in the last 30 days above "
                         f"{self.longs_liquidated_above:.1f}x would have been liquidated by this "
                         f"bar's low (isolated margin, candle low as mark price)")
        if self.next_below is not None:
            lines.append(f"If support breaks: next support {_level_text(self.next_below)}")
        if self.next_above is not None:
            lines.append(f"If resistance breaks: next resistance {_level_text(self.next_above)}")
        return "\n".join(lines)

    def extreme_text(self) -> str | None:
        """'lowest since October 2024' style phrase, or None."""
        if self.lowest_on_record:
            return f"lowest {_by(self.lowest_since_by)}in the data (since {self.data_start:%B %Y})"
        if self.lowest_since is not None:
            return f"lowest {_by(self.lowest_since_by)}since {self.lowest_since:%B %Y}"
        if self.highest_on_record:
            by = _by(self.highest_since_by)
            return f"highest {by}in the data (since {self.data_start:%B %Y})"
        if self.highest_since is not None:
            return f"highest {_by(self.highest_since_by)}since {self.highest_since:%B %Y}"
        return None


def _by(kind: str | None) -> str:
    return "close " if kind == "close" else ""


def _fmt_price(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.2f}"


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


def _level_text(z: OutlookLevel) -> str:
    s = (f"{_fmt_price(z.centre)} (zone {_fmt_price(z.low)}-{_fmt_price(z.high)}, "
         f"{_fmt_pct(z.distance_pct)}, {z.touches} touches)")
    if z.note:
        s += f"; {z.note}"
    if z.wema_confluence:
        s += "; confluence with the 200-week EMA"
    return s


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, pd.Timestamp):
        return None if pd.isna(x) else x.isoformat()
    if x is pd.NaT:
        return None
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _change(close: pd.Series, days: int) -> float | None:
    t = close.index[-1] - pd.Timedelta(days=days)
    if t < close.index[0]:
        return None
    prev = close.loc[:t]
    return None if prev.empty else (close.iloc[-1] / prev.iloc[-1] - 1.0) * 100.0


def _since(values: np.ndarray, index: pd.DatetimeIndex, lowest: bool, days: float):
    """(timestamp of the last earlier bar at or beyond the last value, on_record)."""
    x = values[-1]
    prev = values[:-1]
    hit = np.flatnonzero(prev <= x if lowest else prev >= x)
    span_ok = index[-1] - index[0] > pd.Timedelta(days=days)
    if hit.size == 0:
        return None, bool(span_ok and len(prev) > 0)
    t = index[hit[-1]]
    return (t if index[-1] - t > pd.Timedelta(days=days) else None), False


def _slope(series: np.ndarray, lag: int, flat_pct: float) -> str | None:
    if len(series) <= lag:
        return None
    a, b = series[-1], series[-1 - lag]
    if not (np.isfinite(a) and np.isfinite(b)) or b == 0:
        return None
    ch = (a / b - 1.0) * 100.0
    return "up" if ch > flat_pct else "down" if ch < -flat_pct else "flat"


def _level(row: pd.Series | None, wema: float | None, conf_pct: float,
           role: str) -> OutlookLevel | None:
    if row is None:
        return None
    flip = row["flip"] if isinstance(row["flip"], str) else None
    # "flipped" only when the zone's current role is the one it flipped into
    flipped = (flip == "support_to_resistance" and role == "resistance") or (
        flip == "resistance_to_support" and role == "support")
    conf = False
    if wema is not None and wema > 0:
        gap = max(row["low"] - wema, wema - row["high"], 0.0)
        conf = bool(gap <= conf_pct / 100.0 * wema)
    lt = row["last_touch"]
    return OutlookLevel(
        centre=float(row["centre"]), low=float(row["low"]), high=float(row["high"]),
        touches=int(row["touches"]), strength=float(row["strength"]),
        distance_pct=float(row["distance_pct"]), origin=str(row["origin"]), flip=flip,
        flipped=flipped, note=_FLIP_NOTES[flip] if flipped else None, wema_confluence=conf,
        last_touch=None if pd.isna(lt) else pd.Timestamp(lt),
    )


def outlook(
    df: pd.DataFrame,
    at: object = None,
    *,
    min_touches: int = 2,
    rsi_period: int = 14,
    rsi_oversold: float = 30.0,
    rsi_deep: float = 20.0,
    rsi_overbought: float = 70.0,
    ema_fast: int = 50,
    ema_slow: int = 200,
    wema_period: int = 200,
    slope_bars: int = 10,
    flat_pct: float = 0.5,
    since_days: float = 30.0,
    confluence_pct: float = 3.0,
    critical_candidates: int = 3,
    critical_within_pct: float = 15.0,
    **level_params: Any,
) -> Outlook:
    """The technical outlook of ``df`` as of bar ``at`` (timestamp, date string or position;
    default: the last bar). ``level_params`` go to
    :func:`indicators.levels.support_resistance` (``left``, ``right``, ``tolerance_atr``, ...,
    ``buffer_atr``, ``confirm_closes``, ``retest_bars``, ``round_levels``).

    Raises:
        DataError: ``at`` outside the data, a non-DatetimeIndex frame, or fewer than 2 bars.
    """
    check_rsi_thresholds(rsi_oversold, rsi_deep, rsi_overbought)
    df = to_canonical(df)
    d = cut_frame(df, at)
    if len(d) < 2:
        raise DataError(f"outlook needs at least 2 bars up to {d.index[-1]}, got {len(d)}",
                        hint="pick a later date")
    close_s = d["close"].astype(np.float64)
    close = close_s.to_numpy()
    last = float(close[-1])
    idx = d.index

    lv: Levels = support_resistance(d, min_touches=min_touches, **level_params)
    wema_s = weekly_ema_or_nan(d, wema_period)
    wema = _num(wema_s.iloc[-1])
    wema_prev = wema_s.loc[: idx[-1] - pd.Timedelta(days=28)]

    res = _level(lv.nearest_resistance(), wema, confluence_pct, "resistance")
    sup_row = lv.nearest_support()
    sup = _level(sup_row, wema, confluence_pct, "support")
    below = lv.below(n=max(1, critical_candidates) + 1)
    below = below[below["origin"] != "round"] if "round" in set(below["origin"]) else below
    crit_row = None
    if not below.empty:
        cand = below.head(max(1, critical_candidates))
        cand = cand[cand["distance_pct"] >= -critical_within_pct]
        if cand.empty:
            cand = below.head(1)
        crit_row = cand.iloc[int(np.argmax(cand["strength"].to_numpy()))]  # first max = nearest
    crit = _level(crit_row, wema, confluence_pct, "support")
    nb = lv.below(float(crit_row["centre"]), n=2) if crit_row is not None else None
    next_below = None
    if nb is not None:
        nb = nb[nb["zone_id"] != crit_row["zone_id"]] if crit_row["zone_id"] >= 0 else nb.iloc[1:]
        next_below = _level(nb.iloc[0] if len(nb) else None, wema, confluence_pct, "support")
    next_above = None
    if res is not None:
        na = lv.above(res.centre, n=1)
        next_above = _level(na.iloc[0] if len(na) else None, wema, confluence_pct, "resistance")

    r = np.asarray(ta_rsi(close, rsi_period)) if len(close) > rsi_period else np.full(
        len(close), np.nan)
    rsi_v = _num(r[-1])
    state = oversold(np.array([r[-1]]), rsi_oversold, rsi_deep, rsi_overbought)[0]
    e_fast = np.asarray(ta_ema(close, ema_fast)) if len(close) >= ema_fast else np.full(
        len(close), np.nan)
    e_slow = np.asarray(ta_ema(close, ema_slow)) if len(close) >= ema_slow else np.full(
        len(close), np.nan)
    ema50, ema200 = _num(e_fast[-1]), _num(e_slow[-1])
    s_fast = _slope(e_fast, slope_bars, flat_pct)
    s_slow = _slope(e_slow, slope_bars, flat_pct)
    s_w = None
    if wema is not None and not wema_prev.empty and _num(wema_prev.iloc[-1]):
        s_w = _slope(np.array([wema_prev.iloc[-1], wema]), 1, flat_pct)
    if ema50 is not None and ema200 is not None and last > max(ema50, ema200) and s_fast == "up":
        trend = "bullish"
    elif ema50 is not None and ema200 is not None and last < min(ema50, ema200) \
            and s_fast == "down":
        trend = "bearish"
    else:
        trend = "mixed"

    lows, highs = d["low"].to_numpy(np.float64), d["high"].to_numpy(np.float64)
    low_t, low_rec = _since(lows, idx, True, since_days)
    low_by = "low" if (low_t is not None or low_rec) else None
    if low_by is None:
        low_t, low_rec = _since(close, idx, True, since_days)
        low_by = "close" if (low_t is not None or low_rec) else None
    high_t, high_rec = _since(highs, idx, False, since_days)
    high_by = "high" if (high_t is not None or high_rec) else None
    if high_by is None:
        high_t, high_rec = _since(close, idx, False, since_days)
        high_by = "close" if (high_t is not None or high_rec) else None

    params = dict(min_touches=min_touches, rsi_period=rsi_period, rsi_oversold=rsi_oversold,
                  rsi_deep=rsi_deep, rsi_overbought=rsi_overbought, ema_fast=ema_fast,
                  ema_slow=ema_slow, wema_period=wema_period, slope_bars=slope_bars,
                  flat_pct=flat_pct, since_days=since_days, confluence_pct=confluence_pct,
                  critical_candidates=critical_candidates,
                  critical_within_pct=critical_within_pct, **level_params)
    return Outlook(
        as_of=idx[-1],
        timeframe=str(d.attrs.get("timeframe") or df.attrs.get("timeframe") or "?"),
        last=last,
        change_1bar_pct=(last / close[-2] - 1.0) * 100.0,
        change_7d_pct=_change(close_s, 7),
        change_30d_pct=_change(close_s, 30),
        bar_low=float(lows[-1]),
        bar_high=float(highs[-1]),
        lowest_since=low_t,
        lowest_since_by=low_by,
        lowest_on_record=low_rec,
        highest_since=high_t,
        highest_since_by=high_by,
        highest_on_record=high_rec,
        resistance=res,
        support=sup,
        critical_support=crit,
        next_below=next_below,
        next_above=next_above,
        rsi=rsi_v,
        rsi_period=rsi_period,
        rsi_state=state,
        ema50=ema50,
        ema200=ema200,
        wema200=wema,
        ema50_slope=s_fast,
        ema200_slope=s_slow,
        wema200_slope=s_w,
        dist_wema_pct=None if wema is None else (last / wema - 1.0) * 100.0,
        trend=trend,
        data_start=idx[0],
        params=params,
        longs_liquidated_above=liquidated_above(
            close[:-1][idx[:-1] >= idx[-1] - pd.Timedelta(days=30)], float(d["low"].iloc[-1])),
    )
