"""A market report's "technical outlook" box, computed from candles alone, as of a bar's close.

``outlook(df, at=None)`` truncates the frame first (so nothing later is used) and returns an
:class:`Outlook`: when it is known, price and changes, "lowest/highest since" (close and wick),
the zone price is inside (if any), the immediate resistance (and whether it is a former support),
the immediate and the critical support (with 200-week-EMA confluence), the bar's character, RSI
and its state, trend/momentum against EMA 50/200 and the 200-week EMA (and how far it has
converged), and the next levels beyond. ``Outlook.text()`` renders it; ``Outlook.to_dict()``
(the CLI's ``--json``) carries the same fields, JSON-safe.

Definitions (all documented defaults can be changed through ``outlook(**params)``):

* when: an outlook describes the state **after a bar's close**. ``at`` (a time, a date string,
  naive = UTC) selects the last bar that had **closed** at or before ``at`` (close = open + bar
  length): on daily bars ``at="2026-02-05"`` is the state after the 2026-02-04 daily close, known
  at 2026-02-05 00:00 UTC; on hourly bars it is the 23:00 bar's close. An integer ``at`` is a bar
  position. ``as_of`` is that bar's open time, ``known_at`` its close;
* changes: close vs the previous bar's close, and vs the last close at or before 7 and 30
  calendar days earlier (None when the data does not reach back that far);
* lowest since, said for the close and for the wick (the bar's low) separately: the last earlier
  bar whose close (low) was at or below this bar's close (low), reported when it is more than
  ``since_days`` (30) days back; "on record" when no earlier bar was as low (and the data covers
  more than ``since_days``). Highest since is the mirror image;
* levels: :func:`indicators.levels.support_resistance` zones with ``min_touches=2`` by default.
  A zone whose band holds the close is the zone price is **inside** (neither support nor
  resistance). Immediate resistance/support = the nearest zone entirely above/below the close
  (by centre); a zone that reaches into the one price is inside says so. Critical support = the
  strongest of the ``critical_candidates`` (3) nearest supports within ``critical_within_pct``
  (15%) of the close, ties to the nearer one (the nearest support when none is that close). Next
  level below = the support under the critical support; next above = the resistance over the
  immediate one. Distances are in % of the close, said as "above"/"below price";
* confluence: the zone's band is within ``confluence_pct`` (3%) of the closed-mode 200-week EMA;
* bar character (said only when something stands out): the bar's range (high - low) and volume
  against their means over the ``character_bars`` (20) bars before it; "wide range" / "heavy
  volume" at ``character_ratio`` (2) times the mean or more; a "long upper/lower wick" when the
  wick is at least ``wick_pct`` (50) % of the range; "capitulation-like" for a down bar (close <
  open) with both a wide range and heavy volume that closes in the bottom ``capitulation_pct``
  (25) % of its range;
* 200-week EMA convergence: TA-Lib seeds the EMA with the average of its first 200 weekly
  closes; that seed keeps the weight ``(1 - 2/201) ** n`` n weeks later. When the weight is still
  above 1 % (data starting less than 661 weeks back) the outlook says so, with the weight;
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

from data.frame import MONTHLY, DataError, infer_timeframe, parse_timeframe, to_canonical
from data.resample import period_start
from indicators.core import ema as ta_ema
from indicators.core import rsi as ta_rsi
from indicators.htf import htf_ema_warmup
from indicators.keylevels import weekly_ema_or_nan
from indicators.levels import Levels, support_resistance
from indicators.liquidation import liquidated_above
from indicators.signals import check_rsi_thresholds, oversold

__all__ = ["BarCharacter", "Outlook", "OutlookLevel", "WemaConvergence", "outlook"]

_FLIP_NOTES = {
    "support_to_resistance": "previous support flipped to resistance",
    "resistance_to_support": "previous resistance flipped to support",
}
_BAR_NAMES = {"1d": "daily", "1w": "weekly", "1h": "hourly", MONTHLY: "monthly"}


@dataclass
class OutlookLevel:
    """One zone as the outlook reports it (prices in quote currency).

    ``distance_pct`` is ``(centre - close) / close x 100`` (positive: above price); ``side`` says
    the same in words: ``"above"``, ``"below"`` or ``"inside"`` (the close lies in the band).
    ``overlaps_inside``: the band reaches into the zone price is inside."""

    centre: float
    low: float
    high: float
    touches: int
    strength: float
    distance_pct: float
    origin: str
    side: str = "below"
    flip: str | None = None
    flipped: bool = False  # a former support now resistance (or the reverse), as its role says
    note: str | None = None
    wema_confluence: bool = False
    overlaps_inside: bool = False
    last_touch: pd.Timestamp | None = None


@dataclass
class BarCharacter:
    """How the as-of bar compares with the ``bars`` before it (rules in the module docstring).

    Ratios are this bar's value over the mean of the previous ``bars`` bars (None without enough
    history, or without volume); wicks and ``close_in_range_pct`` (0 = at the low, 100 = at the
    high) in % of the bar's range. ``flags``: ``wide_range``, ``heavy_volume``,
    ``long_upper_wick``, ``long_lower_wick``, ``capitulation_like``; ``rule`` states them."""

    range_ratio: float | None
    volume_ratio: float | None
    upper_wick_pct: float | None
    lower_wick_pct: float | None
    close_in_range_pct: float | None
    flags: list[str]
    bars: int
    rule: str


@dataclass
class WemaConvergence:
    """How far the 200-week EMA has moved away from its seed (see the module docstring).

    ``weekly_closes``: completed weeks it is computed from; ``seed_weight_pct``: the weight the
    seed (average of the first ``period`` weekly closes) still has in the value, in %;
    ``converged``: the weight is below ``tolerance_pct``; ``weeks_needed``: weekly closes needed
    for that."""

    period: int
    data_start: pd.Timestamp
    weekly_closes: int
    seed_weight_pct: float | None
    tolerance_pct: float
    converged: bool
    weeks_needed: int


@dataclass
class Outlook:
    """The technical outlook after the close of the bar opened at ``as_of`` (known at
    ``known_at``); see the module docstring for every definition."""

    as_of: pd.Timestamp
    known_at: pd.Timestamp
    label: str
    timeframe: str
    last: float
    bar_open: float
    change_1bar_pct: float | None
    change_7d_pct: float | None
    change_30d_pct: float | None
    bar_low: float
    bar_high: float
    bar_volume: float | None
    lowest_since: pd.Timestamp | None   # by the wick (low) if that is notable, else the close
    lowest_since_by: str | None         # "low" or "close"
    lowest_on_record: bool
    highest_since: pd.Timestamp | None
    highest_since_by: str | None
    highest_on_record: bool
    close_lowest_since: pd.Timestamp | None
    close_lowest_on_record: bool
    wick_lowest_since: pd.Timestamp | None
    wick_lowest_on_record: bool
    close_highest_since: pd.Timestamp | None
    close_highest_on_record: bool
    wick_highest_since: pd.Timestamp | None
    wick_highest_on_record: bool
    inside: list[OutlookLevel]
    resistance: OutlookLevel | None
    support: OutlookLevel | None
    critical_support: OutlookLevel | None
    next_below: OutlookLevel | None
    next_above: OutlookLevel | None
    character: BarCharacter
    rsi: float | None
    rsi_period: int
    rsi_state: str | None
    ema50: float | None
    ema200: float | None
    wema200: float | None
    ema50_slope: str | None
    ema200_slope: str | None
    wema200_slope: str | None
    dist_wema_pct: float | None   # (close / 200-week EMA - 1) x 100: positive = price above it
    wema_convergence: WemaConvergence | None
    trend: str
    data_start: pd.Timestamp
    params: dict[str, Any] = field(default_factory=dict)
    #: every long opened at a close of the last 30 days above this leverage is liquidated by
    #: this bar's low (None: some would survive any leverage); indicators.liquidation model
    longs_liquidated_above: float | None = None

    # ---------------------------------------------------------------- rendering
    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-safe values (ISO timestamps, None for missing numbers), plus
        ``text``: the lines of :meth:`text`."""
        return _jsonable({**asdict(self), "text": self.text().splitlines()})

    def text(self) -> str:
        """A few lines like a market report's technical-outlook box; every distance says
        "above" or "below"."""
        p = _fmt_price
        lines = [f"Technical outlook {self.label} ({self.timeframe} bars)"]
        chg = ", ".join(
            f"{_fmt_pct(v)} {lbl}"
            for v, lbl in ((self.change_1bar_pct, "on the bar"), (self.change_7d_pct, "7 days"),
                           (self.change_30d_pct, "30 days"))
            if v is not None
        )
        lines.append(f"Close {p(self.last)}" + (f" ({chg})" if chg else ""))
        lines.extend(self.extreme_lines())
        ch = self.character
        if ch.flags:
            lines.append("Bar: " + _character_text(ch))
        for z in self.inside:
            lines.append(f"Price is inside the zone {p(z.low)}-{p(z.high)} (centre {p(z.centre)}, "
                         f"{z.touches} touches, acting as {_role(z)})" + _notes(z))
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
        lines.extend(self._wema_lines())
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

    def _wema_lines(self) -> list[str]:
        conv = self.wema_convergence
        if self.wema200 is None:
            if conv is None:
                return []
            return [f"200-week EMA: n/a, the data holds {conv.weekly_closes} completed weeks "
                    f"(from {conv.data_start:%Y-%m-%d}); it needs {conv.period}"]
        d = self.dist_wema_pct
        where = "at" if d is not None and abs(d) < 0.05 else (
            f"{abs(d):.1f} % {'above' if d > 0 else 'below'}")
        slope = f", {_slope_word(self.wema200_slope)}" if self.wema200_slope else ""
        out = [f"Price {where} the 200-week EMA ({_fmt_price(self.wema200)}{slope})"]
        if conv is not None and not conv.converged and conv.seed_weight_pct is not None:
            out.append(
                f"  not converged: the data starts {conv.data_start:%Y-%m-%d}, so the seed "
                f"(average of the first {conv.period} weekly closes) still weighs "
                f"{conv.seed_weight_pct:.1f} % of the value; below {conv.tolerance_pct:g} % "
                f"needs {conv.weeks_needed} weeks of data, there are {conv.weekly_closes}")
        return out

    def extreme_lines(self) -> list[str]:
        """'Lowest close since October 2024' style lines, close and wick said apart."""
        p = _fmt_price
        out = []
        for word, close_t, close_rec, wick_t, wick_rec, wick in (
            ("lowest", self.close_lowest_since, self.close_lowest_on_record,
             self.wick_lowest_since, self.wick_lowest_on_record, self.bar_low),
            ("highest", self.close_highest_since, self.close_highest_on_record,
             self.wick_highest_since, self.wick_highest_on_record, self.bar_high),
        ):
            parts = []
            if close_rec or close_t is not None:
                parts.append(f"{word} close {_since_text(close_t, close_rec, self.data_start)}")
            if wick_rec or wick_t is not None:
                parts.append(f"the wick to {p(wick)} was the {word} "
                             f"{_since_text(wick_t, wick_rec, self.data_start)}")
            elif parts:
                parts.append(f"wick to {p(wick)}")
            if parts:
                text = "; ".join(parts)
                out.append(text[0].upper() + text[1:])
        return out

    def extreme_text(self) -> str | None:
        """The first "lowest/highest since" line, or None."""
        lines = self.extreme_lines()
        return lines[0] if lines else None


def _since_text(t: pd.Timestamp | None, on_record: bool, start: pd.Timestamp) -> str:
    return f"in the data (since {start:%B %Y})" if on_record else f"since {t:%B %Y}"


def _slope_word(slope: str | None) -> str:
    return {"up": "rising", "down": "falling", "flat": "flat"}.get(slope or "", "n/a")


def _role(z: OutlookLevel) -> str:
    """A zone's role as the levels define it: support when its centre is at or below price."""
    return "support" if z.distance_pct <= 0 else "resistance"


def _fmt_price(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.2f}"


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


def _notes(z: OutlookLevel) -> str:
    s = ""
    if z.note:
        s += f"; {z.note}"
    if z.wema_confluence:
        s += "; confluence with the 200-week EMA"
    if z.overlaps_inside:
        s += "; reaches into the zone price is in"
    return s


def _level_text(z: OutlookLevel) -> str:
    where = f"{abs(z.distance_pct):.1f} % {'above' if z.distance_pct > 0 else 'below'} price"
    return (f"{_fmt_price(z.centre)} (zone {_fmt_price(z.low)}-{_fmt_price(z.high)}, {where}, "
            f"{z.touches} touches)" + _notes(z))


def _character_text(ch: BarCharacter) -> str:
    parts = []
    if "wide_range" in ch.flags:
        parts.append(f"range {ch.range_ratio:.1f}x its {ch.bars}-bar average")
    if "heavy_volume" in ch.flags:
        parts.append(f"volume {ch.volume_ratio:.1f}x its {ch.bars}-bar average")
    if "long_upper_wick" in ch.flags:
        parts.append(f"long upper wick ({ch.upper_wick_pct:.0f} % of the range)")
    if "long_lower_wick" in ch.flags:
        parts.append(f"long lower wick ({ch.lower_wick_pct:.0f} % of the range)")
    text = ", ".join(parts)
    if ch.close_in_range_pct is not None:
        text += f"; closed {ch.close_in_range_pct:.0f} % up its range"
    if "capitulation_like" in ch.flags:
        text += "; capitulation-like"
    return text + f" (rule: {ch.rule})"


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


def finite_or_none(x: Any) -> float | None:
    """``x`` as a float, or None when it is missing, not a number, NaN or infinite."""
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


def _level(row: pd.Series | None, wema: float | None, conf_pct: float, last: float,
           inside_high: float | None = None, inside_low: float | None = None
           ) -> OutlookLevel | None:
    if row is None:
        return None
    low, high, centre = float(row["low"]), float(row["high"]), float(row["centre"])
    side = "inside" if low <= last <= high else ("above" if low > last else "below")
    role = "support" if centre <= last else "resistance"
    flip = row["flip"] if isinstance(row["flip"], str) else None
    # "flipped" only when the zone's current role is the one it flipped into
    flipped = (flip == "support_to_resistance" and role == "resistance") or (
        flip == "resistance_to_support" and role == "support")
    conf = False
    if wema is not None and wema > 0:
        gap = max(low - wema, wema - high, 0.0)
        conf = bool(gap <= conf_pct / 100.0 * wema)
    overlaps = bool(side != "inside" and inside_high is not None and inside_low is not None
                    and low <= inside_high and high >= inside_low)
    lt = row["last_touch"]
    return OutlookLevel(
        centre=centre, low=low, high=high, touches=int(row["touches"]),
        strength=float(row["strength"]), distance_pct=(centre - last) / last * 100.0,
        origin=str(row["origin"]), side=side, flip=flip, flipped=flipped,
        note=_FLIP_NOTES[flip] if flipped else None, wema_confluence=conf,
        overlaps_inside=overlaps, last_touch=None if pd.isna(lt) else pd.Timestamp(lt),
    )


def close_times(index: pd.DatetimeIndex, timeframe: str) -> pd.DatetimeIndex:
    """The close instant of each bar: its open plus the bar length (next month for ``1M``)."""
    if timeframe == MONTHLY:
        return index + pd.offsets.MonthBegin(1)
    return index + parse_timeframe(timeframe)


def closed_by(df: pd.DataFrame, at: object, timeframe: str) -> int:
    """Position of the last bar of ``df`` that had closed at or before the instant ``at`` (a
    time or date string, naive = UTC; an integer is taken as a bar position).

    Raises:
        DataError: no bar had closed by then.
    """
    n = len(df)
    if isinstance(at, int | np.integer) and not isinstance(at, bool):
        pos = int(at) + n if at < 0 else int(at)
        if not 0 <= pos < n:
            raise DataError(f"at={at} is outside the {n} bars of the frame")
        return pos
    try:
        ts = pd.Timestamp(at)
    except (TypeError, ValueError):
        raise DataError(f"at={at!r} is not a time",
                        hint="give a date like 2026-02-05 or an ISO time") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    closes = close_times(df.index, timeframe)
    pos = int(closes.searchsorted(ts, side="right")) - 1
    if pos < 0:
        raise DataError(
            f"at={at} is before the first bar closed ({closes[0]:%Y-%m-%d %H:%M} UTC)",
            hint="pick a later date inside the data span")
    return pos


def _known_label(open_t: pd.Timestamp, known: pd.Timestamp, timeframe: str) -> str:
    """'after the 2026-02-04 daily close (2026-02-05 00:00 UTC)'."""
    kind = _BAR_NAMES.get(timeframe, timeframe)
    daily_or_longer = timeframe == MONTHLY or parse_timeframe(timeframe) >= pd.Timedelta(days=1)
    when = f"{open_t:%Y-%m-%d}" if daily_or_longer else f"{open_t:%Y-%m-%d %H:%M}"
    if timeframe == "1w":
        when = f"week of {when}"
    elif timeframe == MONTHLY:
        when = f"{open_t:%B %Y}"
    return f"after the {when} {kind} close ({known:%Y-%m-%d %H:%M} UTC)"


def _character(d: pd.DataFrame, bars: int, ratio: float, wick_pct: float, cap_pct: float
               ) -> BarCharacter:
    o, h, lo, c, v = (d[k].to_numpy(np.float64) for k in ("open", "high", "low", "close",
                                                            "volume"))
    rng = h - lo
    rule = (f"range or volume >= {ratio:g}x the mean of the {bars} bars before; a wick >= "
            f"{wick_pct:g} % of the range is long; capitulation-like = a down bar with both, "
            f"closing in the bottom {cap_pct:g} % of its range")
    prev = slice(max(0, len(d) - 1 - bars), len(d) - 1)
    enough = len(d) - 1 >= bars
    mean_rng = float(np.mean(rng[prev])) if enough else math.nan
    range_ratio = finite_or_none(rng[-1] / mean_rng) if enough and mean_rng > 0 else None
    pv = v[prev]
    mean_v = float(np.mean(pv)) if enough and np.isfinite(pv).all() else math.nan
    volume_ratio = finite_or_none(v[-1] / mean_v) if math.isfinite(mean_v) and mean_v > 0 else None
    if rng[-1] > 0:
        upper = (h[-1] - max(o[-1], c[-1])) / rng[-1] * 100.0
        lower = (min(o[-1], c[-1]) - lo[-1]) / rng[-1] * 100.0
        pos = (c[-1] - lo[-1]) / rng[-1] * 100.0
    else:
        upper = lower = pos = None
    flags = []
    if range_ratio is not None and range_ratio >= ratio:
        flags.append("wide_range")
    if volume_ratio is not None and volume_ratio >= ratio:
        flags.append("heavy_volume")
    if upper is not None and upper >= wick_pct:
        flags.append("long_upper_wick")
    if lower is not None and lower >= wick_pct:
        flags.append("long_lower_wick")
    if ("wide_range" in flags and "heavy_volume" in flags and c[-1] < o[-1]
            and pos is not None and pos <= cap_pct):
        flags.append("capitulation_like")
    return BarCharacter(range_ratio=range_ratio, volume_ratio=volume_ratio,
                        upper_wick_pct=upper, lower_wick_pct=lower, close_in_range_pct=pos,
                        flags=flags, bars=bars, rule=rule)


def _convergence(d: pd.DataFrame, period: int, timeframe: str) -> WemaConvergence | None:
    """Seed weight of the closed-mode weekly EMA on the last bar (None for bars over a week)."""
    if timeframe == MONTHLY or parse_timeframe(timeframe) > pd.Timedelta(weeks=1):
        return None
    warm = htf_ema_warmup(period)
    weeks = period_start(d.index, "1w")
    # Closed mode: the value on the last bar uses the weeks before the last bar's week.
    closed = len(np.unique(weeks.asi8[weeks.asi8 < weeks.asi8[-1]]))
    n_after_seed = closed - period
    weight = None if n_after_seed < 0 else 100.0 * (1.0 - warm.alpha) ** n_after_seed
    return WemaConvergence(
        period=period, data_start=d.index[0], weekly_closes=closed, seed_weight_pct=weight,
        tolerance_pct=100.0 * warm.tolerance,
        converged=weight is not None and weight < 100.0 * warm.tolerance,
        weeks_needed=warm.meaningful_bars,
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
    character_bars: int = 20,
    character_ratio: float = 2.0,
    wick_pct: float = 50.0,
    capitulation_pct: float = 25.0,
    **level_params: Any,
) -> Outlook:
    """The technical outlook of ``df`` after the close of the last bar that had closed at or
    before ``at`` (a time or date string, naive = UTC; an integer is a bar position; default:
    the last bar). ``df`` is any frame :func:`data.frame.to_canonical` accepts.
    ``level_params`` go to :func:`indicators.levels.support_resistance` (``left``, ``right``,
    ``tolerance_atr``, ..., ``buffer_atr``, ``confirm_closes``, ``retest_bars``,
    ``round_levels``).

    Raises:
        DataError: ``at`` before the first bar's close or outside the data, an unusable frame,
        or fewer than 2 bars.
    """
    check_rsi_thresholds(rsi_oversold, rsi_deep, rsi_overbought)
    df = to_canonical(df)
    if len(df) < 2:
        raise DataError(f"outlook needs at least 2 bars, got {len(df)}")
    tf = str(df.attrs.get("timeframe") or infer_timeframe(df.index))
    pos = len(df) - 1 if at is None else closed_by(df, at, tf)
    d = df.iloc[: pos + 1]
    if len(d) < 2:
        raise DataError(f"outlook needs at least 2 bars up to {d.index[-1]}, got {len(d)}",
                        hint="pick a later date")
    close_s = d["close"]
    close = close_s.to_numpy()
    last = float(close[-1])
    idx = d.index
    known = close_times(idx[-1:], tf)[0]

    lv: Levels = support_resistance(d, min_touches=min_touches, **level_params)
    wema_s = weekly_ema_or_nan(d, wema_period)
    wema = finite_or_none(wema_s.iloc[-1])
    wema_prev = wema_s.loc[: idx[-1] - pd.Timedelta(days=28)]

    t = lv.table
    in_t = t[(t["low"] <= last) & (t["high"] >= last)]
    in_hi = float(in_t["high"].max()) if len(in_t) else None
    in_lo = float(in_t["low"].min()) if len(in_t) else None
    above = t[t["low"] > last]                       # sorted by centre: nearest first
    below = t[t["high"] < last].iloc[::-1]           # nearest first

    def level(row: pd.Series | None) -> OutlookLevel | None:
        return _level(row, wema, confluence_pct, last, in_hi, in_lo)

    inside = [level(r) for _, r in in_t.iterrows()]
    res = level(above.iloc[0] if len(above) else None)
    sup = level(below.iloc[0] if len(below) else None)
    pivots_below = below[below["origin"] != "round"]
    crit_i = None
    if len(pivots_below):
        cand = pivots_below.head(max(1, critical_candidates))
        cand = cand[cand["distance_pct"] >= -critical_within_pct]
        if cand.empty:
            cand = pivots_below.head(1)
        crit_i = cand.index[int(np.argmax(cand["strength"].to_numpy()))]  # first max = nearest
    crit = level(below.loc[crit_i] if crit_i is not None else None)
    next_below = None
    if crit_i is not None:
        lower = below[below["centre"] < below.loc[crit_i, "centre"]]
        next_below = level(lower.iloc[0] if len(lower) else None)
    next_above = level(above.iloc[1] if len(above) > 1 else None)

    r = np.asarray(ta_rsi(close, rsi_period)) if len(close) > rsi_period else np.full(
        len(close), np.nan)
    rsi_v = finite_or_none(r[-1])
    state = oversold(np.array([r[-1]]), rsi_oversold, rsi_deep, rsi_overbought)[0]
    e_fast = np.asarray(ta_ema(close, ema_fast)) if len(close) >= ema_fast else np.full(
        len(close), np.nan)
    e_slow = np.asarray(ta_ema(close, ema_slow)) if len(close) >= ema_slow else np.full(
        len(close), np.nan)
    ema50, ema200 = finite_or_none(e_fast[-1]), finite_or_none(e_slow[-1])
    s_fast = _slope(e_fast, slope_bars, flat_pct)
    s_slow = _slope(e_slow, slope_bars, flat_pct)
    s_w = None
    if wema is not None and not wema_prev.empty and finite_or_none(wema_prev.iloc[-1]):
        s_w = _slope(np.array([wema_prev.iloc[-1], wema]), 1, flat_pct)
    if ema50 is not None and ema200 is not None and last > max(ema50, ema200) and s_fast == "up":
        trend = "bullish"
    elif ema50 is not None and ema200 is not None and last < min(ema50, ema200) \
            and s_fast == "down":
        trend = "bearish"
    else:
        trend = "mixed"

    lows, highs = d["low"].to_numpy(np.float64), d["high"].to_numpy(np.float64)
    cl_low_t, cl_low_rec = _since(close, idx, True, since_days)
    wk_low_t, wk_low_rec = _since(lows, idx, True, since_days)
    cl_high_t, cl_high_rec = _since(close, idx, False, since_days)
    wk_high_t, wk_high_rec = _since(highs, idx, False, since_days)
    # The headline fields: the wick when it is notable, else the close.
    wick_low = wk_low_t is not None or wk_low_rec
    wick_high = wk_high_t is not None or wk_high_rec
    close_low = cl_low_t is not None or cl_low_rec
    close_high = cl_high_t is not None or cl_high_rec
    vol = finite_or_none(d["volume"].iloc[-1])

    params = dict(min_touches=min_touches, rsi_period=rsi_period, rsi_oversold=rsi_oversold,
                  rsi_deep=rsi_deep, rsi_overbought=rsi_overbought, ema_fast=ema_fast,
                  ema_slow=ema_slow, wema_period=wema_period, slope_bars=slope_bars,
                  flat_pct=flat_pct, since_days=since_days, confluence_pct=confluence_pct,
                  critical_candidates=critical_candidates,
                  critical_within_pct=critical_within_pct, character_bars=character_bars,
                  character_ratio=character_ratio, wick_pct=wick_pct,
                  capitulation_pct=capitulation_pct, **level_params)
    return Outlook(
        as_of=idx[-1],
        known_at=known,
        label=_known_label(idx[-1], known, tf),
        timeframe=tf,
        last=last,
        bar_open=float(d["open"].iloc[-1]),
        change_1bar_pct=(last / close[-2] - 1.0) * 100.0,
        change_7d_pct=_change(close_s, 7),
        change_30d_pct=_change(close_s, 30),
        bar_low=float(lows[-1]),
        bar_high=float(highs[-1]),
        bar_volume=vol,
        lowest_since=wk_low_t if wick_low else cl_low_t,
        lowest_since_by="low" if wick_low else ("close" if close_low else None),
        lowest_on_record=wk_low_rec if wick_low else cl_low_rec,
        highest_since=wk_high_t if wick_high else cl_high_t,
        highest_since_by="high" if wick_high else ("close" if close_high else None),
        highest_on_record=wk_high_rec if wick_high else cl_high_rec,
        close_lowest_since=cl_low_t,
        close_lowest_on_record=cl_low_rec,
        wick_lowest_since=wk_low_t,
        wick_lowest_on_record=wk_low_rec,
        close_highest_since=cl_high_t,
        close_highest_on_record=cl_high_rec,
        wick_highest_since=wk_high_t,
        wick_highest_on_record=wk_high_rec,
        inside=inside,
        resistance=res,
        support=sup,
        critical_support=crit,
        next_below=next_below,
        next_above=next_above,
        character=_character(d, character_bars, character_ratio, wick_pct, capitulation_pct),
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
        wema_convergence=_convergence(d, wema_period, tf),
        trend=trend,
        data_start=idx[0],
        params=params,
        longs_liquidated_above=liquidated_above(
            close[:-1][idx[:-1] >= idx[-1] - pd.Timedelta(days=30)], float(d["low"].iloc[-1])),
    )
