"""Liquidation map: where the leveraged positions opened over a recent window would be liquidated.

**A model, not data.** Who holds which position is not in public candle data. The model opens, at
the close of every bar of the window and at each common leverage (2, 3, 5, 10, 20, 25, 50,
100x), a long and a short weighted by the entry bar's traded volume in quote currency (a proxy
for the open interest added on that bar, split equally over the leverages), drops the positions
that the path since then has already liquidated, and sums the rest by liquidation price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtests.squeeze.survival import SIDES
from data.frame import DataError, check_canonical
from indicators.liquidation import MarginModel, liquidation_prices, survival

__all__ = ["MAP_LEVERAGES", "MODEL_NOTE", "LiquidationMap", "liquidation_map"]

MAP_LEVERAGES = (2.0, 3.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0)
MODEL_NOTE = ("model: positions opened at each bar's close at 2-100x, weighted by the bar's "
              "volume (a proxy for open interest); not actual exchange positions or "
              "liquidations")


@dataclass
class LiquidationMap:
    """Output of :func:`liquidation_map`.

    Attributes:
        levels: one row per entry bar, side and leverage: ``entry_time``, ``side``,
            ``leverage``, ``entry_price``, ``liquidation_price`` (quote currency), ``weight``
            (quote volume share), ``alive`` (not yet liquidated by the last bar ``as_of``).
        as_of: the last bar used.
        price: its close.
        window: the entry window, e.g. ``30D``.
    """

    levels: pd.DataFrame
    as_of: pd.Timestamp
    price: float
    window: str

    def strip(self, bins: int = 60, lo: float | None = None, hi: float | None = None
              ) -> pd.DataFrame:
        """Live liquidation weight per price bin and side: columns ``low``, ``high``, ``long``,
        ``short`` (quote volume). Default range: the live levels' range."""
        live = self.levels[self.levels["alive"]]
        if live.empty:
            return pd.DataFrame(columns=["low", "high", "long", "short"])
        lo = float(live["liquidation_price"].min()) if lo is None else lo
        hi = float(live["liquidation_price"].max()) if hi is None else hi
        edges = np.linspace(lo, hi, bins + 1)
        out = pd.DataFrame({"low": edges[:-1], "high": edges[1:]})
        for side in SIDES:
            part = live[live["side"] == side]
            out[side], _ = np.histogram(part["liquidation_price"], edges, weights=part["weight"])
        return out

    def nearest(self) -> dict[str, pd.Series | None]:
        """The heaviest live cluster on each side (bin of 1 % of the price): the row of
        :meth:`strip` with the largest weight below (longs) / above (shorts) the price."""
        out: dict[str, pd.Series | None] = {}
        for side in SIDES:
            live = self.levels[self.levels["alive"] & (self.levels["side"] == side)]
            if live.empty:
                out[side] = None
                continue
            step = self.price * 0.01
            key = np.floor(live["liquidation_price"] / step) * step
            w = live.groupby(key)["weight"].sum()
            out[side] = pd.Series({"low": w.idxmax(), "high": w.idxmax() + step,
                                   "weight": w.max()})
        return out


def liquidation_map(df: pd.DataFrame, window: str | pd.Timedelta = "30D",
                    leverages: tuple[float, ...] = MAP_LEVERAGES,
                    model: MarginModel | None = None) -> LiquidationMap:
    """Liquidation levels of the positions opened at each bar's close over the last ``window``
    of ``df`` (the last bar included: its positions are alive). Returns a
    :class:`LiquidationMap`; see the module docstring for the model.

    Raises:
        DataError: the frame has no volume or the window holds no bar.
    """
    check_canonical(df, "price frame")
    model = model or MarginModel()
    span = pd.Timedelta(window)
    idx = df.index
    last = len(df) - 1
    entries = np.flatnonzero(idx > idx[-1] - span)
    if not len(entries):
        raise DataError(f"no bar in the last {window}")
    vol = df["volume"].to_numpy(np.float64)[entries]
    if not np.isfinite(vol).all() or vol.sum() <= 0:
        raise DataError("the liquidation map weights entries by volume: the frame has none")
    hi, lo, cl = (df[c].to_numpy(np.float64) for c in ("high", "low", "close"))
    levs = np.asarray(leverages, dtype=np.float64)
    ends = np.full(len(entries), last, dtype=np.int64)
    weight = vol * cl[entries] / len(levs)
    rows = []
    for side, code in SIDES.items():
        s = survival(lo, hi, cl, entries, ends, code, levs, model)
        lp = liquidation_prices(code, cl[entries][:, None], levs[None, :], model)
        rows.append(pd.DataFrame({
            "entry_time": np.repeat(idx[entries], len(levs)),
            "side": side,
            "leverage": np.tile(levs, len(entries)),
            "entry_price": np.repeat(cl[entries], len(levs)),
            "liquidation_price": lp.ravel(),
            "weight": np.repeat(weight, len(levs)),
            "alive": (s.liq_bar < 0).ravel() & np.isfinite(lp.ravel()),
        }))
    levels = pd.concat(rows, ignore_index=True)
    label = f"{span.days}D" if span % pd.Timedelta(days=1) == pd.Timedelta(0) else str(span)
    return LiquidationMap(levels=levels, as_of=idx[-1], price=float(cl[-1]), window=label)
