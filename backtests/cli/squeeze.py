"""``btc-backtest squeeze``: how much leverage survived the path BTC actually took.

Examples::

    btc-backtest squeeze --from 2026-01-25 --to 2026-02-04
    btc-backtest squeeze --from 2026-01-25 --to 2026-02-04 --until 2026-02-28 --side long
    btc-backtest squeeze --data btc_1h.csv --from 2026-02-01 --to 2026-02-03 --horizon 7D --json
    btc-backtest squeeze --curve --maintenance 0.005       # safe-leverage curve, whole history
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from backtests.cli.options import announce, data_options
from backtests.squeeze import SqueezeResult, leverage_survival
from backtests.squeeze.liqmap import liquidation_map
from data.select import parse_time, select_candles, slice_dates
from indicators.htf import weekly_ema
from indicators.levels import support_resistance
from indicators.liquidation import DEFAULT_NOTIONAL, MarginModel, load_tiers


def margin_model(maintenance: float | None, tiers: str | None, notional: float,
                 entry_fee: float, liquidation_fee: float) -> MarginModel:
    """The margin model from the command-line options (one of --maintenance / --tiers)."""
    if maintenance is not None and tiers is not None:
        raise click.UsageError("give either --maintenance or --tiers, not both")
    kw = dict(notional=notional, entry_fee=entry_fee, liquidation_fee=liquidation_fee)
    if maintenance is not None:
        return MarginModel.flat(maintenance, **kw)
    if tiers is not None:
        base = load_tiers(tiers)
        return MarginModel(tiers=base.tiers, source=base.source, **kw)
    return MarginModel(**kw)


@click.command("squeeze")
@data_options(dates=False)
@click.option("--from", "start", default=None,
              help="First entry bar (YYYY-MM-DD, UTC). Default: the first bar.")
@click.option("--to", "end", default=None,
              help="Last entry bar (YYYY-MM-DD: the whole day). Default: the last bar.")
@click.option("--until", default=None,
              help="Hold every position up to this date (inclusive) instead of --horizon.")
@click.option("--horizon", default=None,
              help="How long each position is held, e.g. 30D, 12h.  [default: 30D]")
@click.option("--side", type=click.Choice(["long", "short", "both"]), default="both",
              show_default=True)
@click.option("--maintenance", type=float, default=None,
              help="One maintenance-margin rate for every notional (0.005 = 0.5 %) instead "
                   "of the tier table.")
@click.option("--tiers", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Tier table (JSON or CSV: max_notional,max_leverage,maintenance_rate). "
                   "Default: Binance USDT-M BTCUSDT, 2021-03-18.")
@click.option("--notional", type=float, default=DEFAULT_NOTIONAL, show_default=True,
              help="Position notional in quote currency (selects the tier).")
@click.option("--entry-fee", type=float, default=0.0, show_default=True,
              help="Entry fee taken from the isolated margin, fraction of notional.")
@click.option("--liquidation-fee", type=float, default=0.005, show_default=True,
              help="Fee on liquidation, fraction of notional (sets the loss, not the price).")
@click.option("--curve", "show_curve", is_flag=True,
              help="Print the safe-leverage curve (1x..100x) instead of the entries.")
@click.option("--rows", type=click.IntRange(1), default=40, show_default=True,
              help="Text table: at most this many entries (the lowest surviving leverage).")
@click.option("--png", "png_dir", type=click.Path(file_okay=False), default=None,
              help="Also write PNG charts here: survival heatmap per side, safe-leverage "
                   "curve, liquidation map (last 30 days up to --to) beside the price.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON array: one object per entry bar and side (or per leverage "
                   "and side with --curve).")
def squeeze_command(data_file: str | None, data_dir: str | None, timeframe: str | None,
                    offline: bool,
                    dataset: str | None, allow_dates: bool, start: str | None,
                    end: str | None, until: str | None,
                    horizon: str | None, side: str, maintenance: float | None,
                    tiers: str | None, notional: float, entry_fee: float,
                    liquidation_fee: float, show_curve: bool, rows: int,
                    png_dir: str | None, as_json: bool) -> None:
    """Maximum leverage that survived, per entry bar, with the path BTC actually took.

    A position is opened at each entry bar's close (isolated margin) and liquidated when a later
    bar's low (long) or high (short) reaches its liquidation price. Exchanges liquidate on the
    mark price; this uses candle highs/lows.
    """
    if until is not None and horizon is not None:
        raise click.UsageError("give either --until or --horizon, not both")
    span = None
    if horizon is not None:
        try:
            span = pd.Timedelta(horizon)
        except ValueError:
            raise click.BadParameter(f"{horizon!r} is not a duration; use e.g. 30D or 12h",
                                     param_hint="--horizon") from None
    model = margin_model(maintenance, tiers, notional, entry_fee, liquidation_fee)
    df, _origin = select_candles(data_file, data_dir, timeframe,
                                 offline=offline, dataset=dataset, allow_dates=allow_dates,
                                 echo=announce)
    res = leverage_survival(df, start, end, horizon=span, until=until, side=side, model=model)
    if png_dir is not None:
        for path in write_pngs(df, res, Path(png_dir), end, model):
            click.echo(f"wrote {path}", err=True)
    if show_curve:
        curve = res.curve()
        if as_json:
            click.echo(json.dumps([{k: (None if pd.isna(v) else v) for k, v in r.items()}
                                   for r in curve.to_dict("records")], indent=1))
            return
        wide = curve.pivot(index="leverage", columns="side", values="liquidated_share")
        n = curve.groupby("side")["entries"].first()
        click.echo(f"share of entries liquidated within {res.horizon} "
                   f"({', '.join(f'{s}: {n[s]} entries' for s in wide.columns)})")
        click.echo("leverage " + " ".join(f"{s:>7}" for s in wide.columns))
        for lev, r in wide.iterrows():
            click.echo(f"{lev:>7g}x " + " ".join(f"{v * 100:>6.1f}%" for v in r))
        click.echo(res.model_line())
        return
    if as_json:
        click.echo(json.dumps(res.records(), indent=1, allow_nan=False))
    else:
        click.echo(res.text(rows=rows))


def write_pngs(df: pd.DataFrame, res: SqueezeResult, out: Path, end: str | None,
               model: MarginModel) -> list[Path]:
    """The squeeze charts for ``res`` and the liquidation map as of ``end`` (default: the last
    bar) into ``out``; returns the paths written."""
    # matplotlib costs 0.6-2 s to import (measured with -X importtime): only when charts are
    # asked for, not on every btc-backtest start.
    from backtests.squeeze.plots import (
        liquidation_map_png,
        safe_leverage_png,
        survival_heatmap_png,
    )

    paths = [survival_heatmap_png(res, out / f"survival_{side}.png", side)
             for side in res.liq_bars]
    paths.append(safe_leverage_png(res, out / "safe_leverage.png"))
    upto = slice_dates(df, None, parse_time(end, "--to")) if end is not None else df
    zones = support_resistance(upto, min_touches=2).table
    paths.append(liquidation_map_png(upto, liquidation_map(upto, model=model),
                                     out / "liquidation_map.png", zones=zones,
                                     wema=weekly_ema(upto)))
    return paths


COMMANDS = [squeeze_command]
