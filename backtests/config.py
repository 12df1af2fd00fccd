"""Engine configuration shared by both engines: :class:`BacktestConfig`.

Units: ``cash`` in quote currency (USD/USDT); ``commission``, ``maintenance_margin`` and
``liquidation_fee`` as fractions of notional (0.001 = 0.1 %); ``slippage_bps`` in basis points of
the reference price; ``funding_rate`` as a fraction of notional per 8-hour funding period (a
constant, or a Series of rates indexed by funding time). See :mod:`backtests.engines.fast` for the
exact execution rules both engines follow.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

SIZINGS = ("percent", "fixed", "risk")
MODES = ("long", "short", "both")
ENGINES = ("fast", "backtrader")
FUNDING_PERIOD = pd.Timedelta(hours=8)  # perpetual swaps settle funding at 00, 08, 16 UTC
#: An account whose equity fell below this fraction of the starting cash is wiped out: it opens
#: no more trades (trading dust would only measure float rounding, in both engines).
WIPED_OUT = 1e-6


class ConfigError(ValueError):
    """A backtest configuration value that is out of range or of the wrong kind."""


@dataclass
class BacktestConfig:
    """How a backtest is executed (identical meaning in both engines).

    Attributes:
        cash: starting equity, quote currency.
        commission: fee per side, fraction of the traded notional.
        slippage_bps: adverse slippage on market-like fills, basis points of the price.
        leverage: notional / initial margin (isolated margin), >= 1.
        maintenance_margin: maintenance-margin rate, fraction of notional.
        liquidation_fee: fee charged on a liquidation, fraction of the notional at the
            liquidation price (replaces the commission on that exit).
        funding_rate: per 8-hour funding period, fraction of notional, paid by longs when
            positive; a float, or a Series indexed by funding time (forward-filled).
        sizing: "percent" (``size`` = fraction of equity used as margin plus entry fee),
            "fixed" (``size`` = BTC), "risk" (``size`` = fraction of equity lost at the stop).
        size: see ``sizing``.
        mode: "both" (default: the strategy's signals are traded as written, a ``-1`` entry
            opens a short), "long" (long-only: a ``-1`` only closes a long) or "short"
            (short-only). The command line has the same default.
        engine: "fast" or "backtrader".
    """

    cash: float = 10_000.0
    commission: float = 0.001
    slippage_bps: float = 0.0
    leverage: float = 1.0
    maintenance_margin: float = 0.005
    liquidation_fee: float = 0.005
    funding_rate: float | pd.Series = 0.0
    sizing: str = "percent"
    size: float = 1.0
    mode: str = "both"
    engine: str = "fast"

    def __post_init__(self) -> None:
        for name in ("cash", "commission", "slippage_bps", "leverage", "maintenance_margin",
                     "liquidation_fee", "size"):
            val = getattr(self, name)
            try:
                val = float(val)
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be a number, got {val!r}") from None
            if not np.isfinite(val):
                raise ConfigError(f"{name} must be finite, got {val!r}")
            setattr(self, name, val)
        _need(self.cash > 0, f"cash must be > 0, got {self.cash}")
        _need(0 <= self.commission < 0.1, f"commission is a fraction per side in [0, 0.1), got "
              f"{self.commission} (0.001 = 0.1 %)")
        _need(0 <= self.slippage_bps < 1000, f"slippage_bps must be in [0, 1000), got "
              f"{self.slippage_bps}")
        _need(1 <= self.leverage <= 125, f"leverage must be in [1, 125], got {self.leverage}")
        _need(0 <= self.maintenance_margin < 0.5, f"maintenance_margin must be in [0, 0.5), got "
              f"{self.maintenance_margin}")
        _need(0 <= self.liquidation_fee < 0.5, f"liquidation_fee must be in [0, 0.5), got "
              f"{self.liquidation_fee}")
        _need(self.sizing in SIZINGS, f"sizing must be one of {', '.join(SIZINGS)}, got "
              f"{self.sizing!r}")
        _need(self.mode in MODES, f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        _need(self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}, got "
              f"{self.engine!r}")
        if self.sizing == "fixed":
            _need(self.size > 0, f"fixed size is in BTC and must be > 0, got {self.size}")
        else:
            _need(0 < self.size <= 1, f"{self.sizing} size is a fraction of equity in (0, 1], "
                  f"got {self.size}")
        if isinstance(self.funding_rate, pd.Series):
            s = self.funding_rate
            if not isinstance(s.index, pd.DatetimeIndex) or s.index.tz is None:
                raise ConfigError("a funding_rate Series needs a tz-aware DatetimeIndex of "
                                  "funding times")
            if not s.index.is_monotonic_increasing or s.isna().any():
                raise ConfigError("funding_rate Series must be sorted by time with no NaN")
            self.funding_rate = s.astype(np.float64)
        else:
            try:
                self.funding_rate = float(self.funding_rate)
            except (TypeError, ValueError):
                raise ConfigError(f"funding_rate must be a number or a Series, got "
                                  f"{self.funding_rate!r}") from None
            _need(abs(self.funding_rate) < 0.1, f"funding_rate is per 8 h, |rate| < 0.1, got "
                  f"{self.funding_rate}")

    @property
    def slippage(self) -> float:
        """Slippage as a fraction of price."""
        return self.slippage_bps / 1e4

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (a funding Series becomes ``{iso time: rate}``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            val = getattr(self, f.name)
            if isinstance(val, pd.Series):
                val = {ts.isoformat(): float(v) for ts, v in val.items()}
            out[f.name] = val
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BacktestConfig:
        """Inverse of :meth:`to_dict`; unknown keys are rejected with the list of valid ones."""
        valid = [f.name for f in fields(cls) if not f.name.startswith("_")]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(valid)}")
        d = dict(d)
        fr = d.get("funding_rate")
        if isinstance(fr, dict):
            idx = pd.DatetimeIndex(pd.to_datetime(list(fr), utc=True)).as_unit("ns")
            d["funding_rate"] = pd.Series(list(fr.values()), index=idx, dtype=np.float64)
        return cls(**d)

    def funding_per_bar(self, index: pd.DatetimeIndex, timeframe: str | pd.Timedelta | None
                        = None) -> np.ndarray:
        """Sum of funding rates of the 8-hour funding times inside each bar.

        A funding time ``f`` (00:00, 08:00, 16:00 UTC) belongs to the bar whose
        ``[open, open + timeframe)`` contains it; a position held at that bar's close pays
        ``rate * size * close`` for each of them (3 charges per daily bar, 1 per 8 hourly bars).
        Returns float64, one value per bar (0 where no funding time falls).
        """
        from data.frame import infer_timeframe, parse_timeframe

        n = len(index)
        if n == 0:
            return np.zeros(0)
        if isinstance(self.funding_rate, float) and self.funding_rate == 0.0:
            return np.zeros(n)
        tf = parse_timeframe(timeframe if timeframe is not None else infer_timeframe(index))
        step = FUNDING_PERIOD.value
        opens = index.as_unit("ns").asi8
        ends = opens + tf.value
        # funding times in [open, end): count of multiples of 8 h
        first = -(-opens // step)  # ceil
        last = -(-ends // step) - 1
        counts = np.maximum(last - first + 1, 0)
        if isinstance(self.funding_rate, float):
            return counts * self.funding_rate
        s = self.funding_rate
        t0 = int(first[counts > 0].min()) if (counts > 0).any() else 0
        t1 = int(last[counts > 0].max()) if (counts > 0).any() else -1
        if t1 < t0:
            return np.zeros(n)
        times = np.arange(t0, t1 + 1, dtype=np.int64) * step
        s_ns = s.index.as_unit("ns").asi8
        if times[0] < s_ns[0]:
            raise ConfigError(
                f"funding_rate Series starts at {s.index[0]} but the data needs a rate from "
                f"{pd.Timestamp(times[0], tz='UTC')}; extend the series or use a constant"
            )
        pos = np.searchsorted(s_ns, times, side="right") - 1  # forward fill
        rates = s.to_numpy()[pos]
        csum = np.concatenate([[0.0], np.cumsum(rates)])
        out = np.zeros(n)
        has = counts > 0
        a = first[has] - t0
        b = last[has] - t0 + 1
        out[has] = csum[b] - csum[a]
        return out


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)
