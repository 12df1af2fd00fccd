"""Leverage survival over a window of entry bars: which leverage would have survived the path.

:func:`leverage_survival` opens, at the close of every bar of the window and on each side, an
isolated-margin position and follows the bars after it up to a horizon (``30D`` by default, or
a fixed ``until`` date). It reports per entry and side the maximum leverage that survived, the
first leverage step above it with the bar that liquidated it, and the adverse excursion; and per
leverage (1x..100x) the share of entries liquidated within the horizon (the safe-leverage curve).
The math is :mod:`indicators.liquidation` (pure arrays); this module handles frames, dates and
presentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from data.frame import DataError, check_canonical, infer_timeframe, parse_timeframe
from data.select import parse_time
from indicators.liquidation import MarginModel, survival

__all__ = ["CAVEAT", "DEFAULT_HORIZON", "LEVERAGES", "SIDES", "SqueezeResult",
           "leverage_survival"]

#: The leverage grid of the safe-leverage curve and of "the next leverage step".
LEVERAGES = np.arange(1.0, 101.0)
DEFAULT_HORIZON = pd.Timedelta(days=30)
SIDES = {"long": 1, "short": -1}
CAVEAT = ("exchanges liquidate on the mark price; this model uses the candles' low (longs) and "
          "high (shorts) of one market")
_CURVE_SHOWN = (2, 3, 5, 10, 20, 25, 50, 100)
_DAY_NS = 86_400 * 10**9


@dataclass
class SqueezeResult:
    """Output of :func:`leverage_survival`.

    Attributes:
        table: one row per entry bar and side (entry_time = the bar's timestamp, the position
            opens at its close = ``opened_at``; prices in quote currency; ``max_leverage`` float,
            capped at the tier's max leverage; ``adverse_pct`` the worst move against the
            position after entry in % of the entry price; ``next_leverage`` the smallest grid
            leverage that did not survive and ``next_liquidated_time`` the bar that liquidated it;
            ``complete`` False when the data ends before the horizon).
        liq_bars: side -> (entries, leverages) bar positions in ``index`` of each grid
            leverage's liquidation (-1 = survived the horizon).
        entry_bars: positions in ``index`` of the entry bars.
        index: the frame's index (to turn bar positions into times).
        leverages: the grid.
        model: the margin model used.
        horizon: the horizon as text (``30D`` or ``until 2026-03-01``).
    """

    table: pd.DataFrame
    liq_bars: dict[str, np.ndarray]
    entry_bars: np.ndarray
    index: pd.DatetimeIndex
    leverages: np.ndarray
    model: MarginModel
    horizon: str
    complete: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def curve(self) -> pd.DataFrame:
        """The safe-leverage curve: per side and grid leverage, the share (0..1) of entries with
        a complete horizon that were liquidated within it, and how many entries count."""
        rows = []
        for side, bars in self.liq_bars.items():
            done = bars[self.complete]
            n = len(done)
            share = (done >= 0).mean(axis=0) if n else np.full(len(self.leverages), np.nan)
            rows.append(pd.DataFrame({"side": side, "leverage": self.leverages,
                                      "liquidated_share": share, "entries": n}))
        return pd.concat(rows, ignore_index=True)

    def summary(self) -> list[str]:
        """One line per side: the range of maximum surviving leverage over the window."""
        out = []
        for side in self.liq_bars:
            t = self.table[self.table["side"] == side]
            if t.empty:
                continue
            first, last = t["entry_time"].iloc[0], t["entry_time"].iloc[-1]
            lo, hi = t["max_leverage"].min(), t["max_leverage"].max()
            cap = self.model.terms()[2]
            rng = f"{lo:.1f}x" if np.isclose(lo, hi) else f"{lo:.1f}x–{hi:.1f}x"
            note = "" if t["complete"].all() else " (data ends before some horizons)"
            capped = f" (cap {cap:g}x = never liquidated)" if hi >= cap else ""
            out.append(f"{side}s opened {_day(first)}..{_day(last)} survived {self.horizon} "
                       f"only below {rng}{capped}, median {t['max_leverage'].median():.1f}x"
                       f"{note}")
        return out

    def model_line(self) -> str:
        """The margin model in words, with the caveat about mark price vs candles."""
        rate, amount, cap = self.model.terms()
        amt = f" minus {amount * 100:.3g} % maintenance amount" if amount else ""
        fee = (f", entry fee {self.model.entry_fee * 100:.3g} % from margin"
               if self.model.entry_fee else "")
        return (f"model: isolated margin, {self.model.source}; notional "
                f"{self.model.notional:,.0f} -> maintenance {rate * 100:.2f} %{amt}, max "
                f"{cap:g}x{fee}, liquidation fee {self.model.liquidation_fee * 100:.2g} %. "
                f"{CAVEAT}.")

    def text(self, rows: int = 40) -> str:
        """A compact table (entry date, price, per side: max surviving leverage, adverse
        excursion, next leverage step and its liquidation date), the summary, the curve at
        common leverages and the model line. More than ``rows`` entries: the ``rows`` entries
        with the lowest surviving leverage are shown (in date order)."""
        wide = self.table.pivot(index="entry_time", columns="side")
        sides = [s for s in self.liq_bars]
        if len(wide) > rows:
            worst = wide[[("max_leverage", s) for s in sides]].min(axis=1)
            wide = wide.loc[worst.nsmallest(rows).index.sort_values()]
            head = [f"{rows} of {len(self.table) // len(sides)} entries (lowest surviving "
                    f"leverage first picked; --json for all)"]
        else:
            head = []
        cols = f"{'entry (close)':<13} {'price':>11}"
        for s in sides:
            cols += f" | {s + ' max':>10} {'adverse':>8} {'next liquidated':<19}"
        lines = [*head, cols, "-" * len(cols)]
        for ts, r in wide.iterrows():
            line = f"{_day(ts):<13} {r[('entry_price', sides[0])]:>11,.2f}"
            for s in sides:
                nxt = r[("next_leverage", s)]
                when = r[("next_liquidated_time", s)]
                step = (f"{nxt:g}x on {_day(when)}" if pd.notna(when) else "-")
                mark = "" if r[("complete", s)] else "*"
                line += (f" | {r[('max_leverage', s)]:>9.2f}x{mark:1}"
                         f"{-r[('adverse_pct', s)]:>7.1f}% {step:<19}"[:44])
            lines.append(line.rstrip())
        lines.append("")
        lines += self.summary()
        curve = self.curve()
        for s in sides:
            c = curve[(curve["side"] == s) & curve["leverage"].isin(_CURVE_SHOWN)]
            if c["entries"].iloc[0] == 0:
                continue
            parts = " ".join(f"{lv:g}x {sh * 100:.0f}%" for lv, sh in
                             zip(c["leverage"], c["liquidated_share"], strict=True))
            lines.append(f"{s}s liquidated within {self.horizon} ({c['entries'].iloc[0]} "
                         f"entries): {parts}")
        if not self.complete.all():
            lines.append("* horizon cut short by the end of the data")
        lines.append(self.model_line())
        return "\n".join(lines)

    def records(self) -> list[dict[str, Any]]:
        """JSON-safe list, one object per entry bar and side (times ISO 8601, NaN -> None)."""
        out = []
        for r in self.table.to_dict("records"):
            out.append({k: _jsonable(v) for k, v in r.items()})
        return out


def _day(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%d}" if ts.hour == 0 and ts.minute == 0 else f"{ts:%Y-%m-%d %H:%M}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _end_exclusive(value: object, name: str) -> pd.Timestamp:
    """A date-only bound covers the whole day; a timestamp bound is inclusive of that bar."""
    ts = parse_time(value, name)
    if isinstance(value, str) and len(value.strip()) <= 10:
        return ts + pd.Timedelta(days=1)
    return ts + pd.Timedelta(1, "ns")


def leverage_survival(df: pd.DataFrame, start: object = None, end: object = None, *,
                      horizon: str | pd.Timedelta | None = None, until: object = None,
                      side: str = "both", model: MarginModel | None = None,
                      leverages: np.ndarray = LEVERAGES, daily: bool = False) -> SqueezeResult:
    """Leverage survival of positions opened at the close of each bar from ``start`` to ``end``.

    Args:
        df: canonical candles (``open/high/low/close/volume``, UTC index).
        start, end: first/last entry bar (dates: whole days; default the whole frame).
        horizon: how long each position is held (``"30D"``, a Timedelta); default 30 days.
        until: hold every position up to and including this date instead of a horizon.
        side: ``long``, ``short`` or ``both``.
        model: margin model (default: Binance BTCUSDT tiers at a 10,000 USDT notional).
        leverages: the grid for the curve and the next-step liquidation (ascending).
        daily: open positions only at the close of each UTC day (the last bar of each day;
            every bar on daily or coarser data, the same as False there). Keeps the work and
            memory at one entry per day on intraday data (525,600 entries a year on minute bars).

    Returns:
        A :class:`SqueezeResult`.

    Raises:
        DataError: bad dates, an empty window, or both ``horizon`` and ``until``.
    """
    check_canonical(df, "price frame")
    if horizon is not None and until is not None:
        raise DataError("give either a horizon or an until date, not both")
    if side not in ("long", "short", "both"):
        raise DataError(f"side must be long, short or both, got {side!r}")
    model = model or MarginModel()
    levs = np.asarray(leverages, dtype=np.float64)
    if levs.ndim != 1 or not len(levs) or np.any(np.diff(levs) <= 0) or levs[0] < 1:
        raise DataError("leverages must be an ascending grid of values >= 1")
    idx = df.index
    tf = parse_timeframe(df.attrs.get("timeframe") or infer_timeframe(idx))
    opens = idx.as_unit("ns").asi8
    data_end = opens[-1] + tf.value
    t0 = parse_time(start, "start").value if start is not None else opens[0]
    t1 = _end_exclusive(end, "end").value if end is not None else data_end
    keep = (opens >= t0) & (opens < t1) & (np.arange(len(idx)) < len(idx) - 1)
    if daily:
        day = opens // _DAY_NS
        keep[:-1] &= day[:-1] != day[1:]  # the last bar of its day (its close ends the day)
    entries = np.flatnonzero(keep)
    if not len(entries):
        what = "day's last bar" if daily else "entry bar"
        raise DataError(f"no {what} between {start or 'the start'} and {end or 'the end'} "
                        f"with a later bar to follow it",
                        hint=f"the data spans {_day(idx[0])} to {_day(idx[-1])}")
    if until is not None:
        stop = _end_exclusive(until, "until").value
        if stop <= opens[entries[0]] + tf.value:
            raise DataError(f"until {until} is not after the first entry ({_day(idx[entries[0]])})")
        stops = np.full(len(entries), stop, dtype=np.int64)
        label = f"until {_day(pd.Timestamp(stop - 1, tz='UTC'))}"
    else:
        span = pd.Timedelta(horizon) if horizon is not None else DEFAULT_HORIZON
        if span <= pd.Timedelta(0):
            raise DataError(f"horizon must be positive, got {horizon}")
        stops = opens[entries] + tf.value + span.value
        label = _span(span)
    ends = np.searchsorted(opens, stops, side="left") - 1
    complete = stops <= data_end
    hi, lo, cl = (df[c].to_numpy(np.float64) for c in ("high", "low", "close"))
    tables, liq = [], {}
    for name in ("long", "short") if side == "both" else (side,):
        s = survival(lo, hi, cl, entries, ends, SIDES[name], levs, model)
        liq[name] = s.liq_bar
        liquidated = s.liq_bar >= 0
        first = np.where(liquidated.any(axis=1), liquidated.argmax(axis=1), -1)
        nxt_bar = np.where(first >= 0, s.liq_bar[np.arange(len(entries)), first], -1)
        price = cl[entries]
        tables.append(pd.DataFrame({
            "entry_time": idx[entries],
            "opened_at": idx[entries] + tf,
            "side": name,
            "entry_price": price,
            "max_leverage": s.max_leverage,
            "adverse_pct": SIDES[name] * (s.extreme / price - 1.0) * 100.0,
            "adverse_price": s.extreme,
            "adverse_time": idx[s.extreme_bar],
            "next_leverage": np.where(first >= 0, levs[np.maximum(first, 0)], np.nan),
            "next_liquidated_time": _times(idx, nxt_bar),
            "horizon_end": idx[ends],
            "complete": complete,
        }))
    table = pd.concat(tables, ignore_index=True).sort_values(["entry_time", "side"],
                                                             kind="stable", ignore_index=True)
    return SqueezeResult(table=table, liq_bars=liq, entry_bars=entries, index=idx,
                         leverages=levs, model=model, horizon=label, complete=complete)


def _times(idx: pd.DatetimeIndex, bars: np.ndarray) -> pd.DatetimeIndex:
    """Bar positions -> timestamps, NaT where the position is -1."""
    out = idx[np.maximum(bars, 0)].to_series().reset_index(drop=True)
    out[bars < 0] = pd.NaT
    return pd.DatetimeIndex(out)


def _span(td: pd.Timedelta) -> str:
    if td % pd.Timedelta(days=1) == pd.Timedelta(0):
        return f"{td.days}D"
    return f"{td / pd.Timedelta(hours=1):g}h"
