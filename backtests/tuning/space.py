"""Parameter spaces: grid axes from the command line, full grids, random sets, and the check of
every set against the strategy's declared parameters before any work starts."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from strategies.base import ParamConflict

Params = dict[str, Any]


_RANGE_RE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


def _number(text: str, spec: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{spec!r}: {text!r} is not a number") from None


def _scalar(text: str) -> Any:
    text = text.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return _number(text, text)
    except ValueError:
        return text


def parse_axis(spec: str) -> tuple[str, list[Any]]:
    """One grid axis from ``key=start:stop:step`` (stop inclusive), ``key=a,b,c`` or ``key=v``.

    Ranges of integers stay integers; float ranges are rounded to 12 significant digits so that
    ``0.1:0.3:0.1`` gives ``[0.1, 0.2, 0.3]`` and not ``0.30000000000000004``.
    """
    if "=" not in spec:
        raise ValueError(f"grid axis {spec!r} must look like key=start:stop:step or key=a,b,c")
    key, _, values = spec.partition("=")
    key = key.strip()
    if not key.isidentifier():
        raise ValueError(f"grid axis {spec!r}: {key!r} is not a parameter name")
    m = _RANGE_RE.match(values)
    if m:
        start, stop, step = (_number(g, spec) for g in m.groups())
        if step <= 0:
            raise ValueError(f"grid axis {spec!r}: step must be > 0")
        if stop < start:
            raise ValueError(f"grid axis {spec!r}: stop {stop} is below start {start}")
        n = math.floor((stop - start) / step + 1e-9) + 1
        if n > 100_000:
            raise ValueError(f"grid axis {spec!r} has {n} values: use a larger step")
        if all(isinstance(v, int) for v in (start, stop, step)):
            vals: list[Any] = [start + i * step for i in range(n)]
        else:
            vals = [float(f"{start + i * step:.12g}") for i in range(n)]
        return key, vals
    items = [v for v in values.split(",") if v.strip()]
    if not items:
        raise ValueError(f"grid axis {spec!r} has no values")
    return key, [_scalar(v) for v in items]


def parse_grid(specs: Iterable[str]) -> dict[str, list[Any]]:
    """Axes from ``--grid`` specs, in the order given; a key given twice is an error."""
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        key, vals = parse_axis(spec)
        if key in axes:
            raise ValueError(f"grid axis {key!r} is given twice")
        axes[key] = vals
    return axes


def grid(axes: dict[str, Sequence[Any]]) -> list[Params]:
    """Cartesian product of the axes, the first axis varying slowest (deterministic order)."""
    keys = list(axes)
    for k in keys:
        if len(axes[k]) == 0:
            raise ValueError(f"grid axis {k!r} has no values")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values())]


def random_space(
    n: int,
    ranges: dict[str, Sequence[Any] | tuple[float, float]],
    seed: int = 0,
    integer: Iterable[str] = (),
) -> list[Params]:
    """``n`` distinct random parameter sets, reproducible from ``seed``.

    Each range is either a list of values (sampled uniformly) or a ``(low, high)`` tuple of
    numbers (uniform in ``[low, high]``; integers in ``integer`` are drawn from ``low..high``).
    If the space has fewer than ``n`` distinct points, all of them are returned (in grid order).
    """
    if n < 1:
        raise ValueError(f"--random needs N >= 1, got {n}")
    integer = set(integer)
    keys = list(ranges)
    discrete: dict[str, list[Any]] = {}
    for k in keys:
        r = ranges[k]
        if isinstance(r, tuple):
            lo, hi = r
            if hi < lo:
                raise ValueError(f"random range for {k!r}: high {hi} is below low {lo}")
            if k in integer:
                discrete[k] = list(range(int(lo), int(hi) + 1))
        else:
            if len(r) == 0:
                raise ValueError(f"random range for {k!r} has no values")
            discrete[k] = list(r)
    if len(discrete) == len(keys):
        size = math.prod(len(v) for v in discrete.values())
        if size <= n:
            return grid(discrete)
    rng = np.random.default_rng(seed)
    seen: set[tuple] = set()
    out: list[Params] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"could not draw {n} distinct parameter sets from {ranges}")
        p: Params = {}
        for k in keys:
            if k in discrete:
                vals = discrete[k]
                p[k] = vals[int(rng.integers(len(vals)))]
            else:
                lo, hi = ranges[k]  # type: ignore[misc]
                p[k] = float(f"{rng.uniform(lo, hi):.12g}")
        key = tuple(p[k] for k in keys)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def as_param_sets(space: Sequence[Params] | dict[str, Sequence[Any]]) -> list[Params]:
    """A parameter space as a list of sets: grid axes expanded (:func:`grid`), a list copied."""
    if isinstance(space, dict):
        return grid(space)
    return [dict(p) for p in space]


def check_params(strategy_cls: type, param_sets: Sequence[Params],
                 built: dict[int, tuple[Params, Any]] | None = None) -> list[dict[str, Any]]:
    """Validate every parameter set against the strategy before any work starts. With
    ``built``, each accepted set's strategy is kept there as ``id(set): (set, strategy)`` (a
    sweep then runs these instances instead of building each a second time).

    Returns:
        The sets whose values conflict with each other (the strategy's ``check`` raised
        :class:`~strategies.base.ParamConflict`, e.g. ``deep >= oversold``), to be skipped:
        ``[{"trial": position, "params": set, "reason": message}, ...]``. A grid crossing such
        a boundary is normal; those sets are not trials and do not count in the DSR.

    Raises:
        ValueError (the strategy's ``ParamError``) naming the set: an unknown key or a value
        outside its declaration; ``ParamConflict`` when every set conflicts.
    """
    skipped = []
    for i, p in enumerate(param_sets):
        try:
            strategy = strategy_cls(**p)
        except ParamConflict as exc:
            skipped.append({"trial": i, "params": dict(p), "reason": str(exc)})
        except ValueError as exc:
            raise type(exc)(f"{exc} (in parameter set {p})") from None
        else:
            if built is not None:
                built[id(p)] = (p, strategy)
    if param_sets and len(skipped) == len(param_sets):
        first = skipped[0]
        raise ParamConflict(f"every parameter set conflicts, e.g. {first['params']}: "
                            f"{first['reason']}")
    return skipped


