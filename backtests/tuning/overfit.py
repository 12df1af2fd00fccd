"""Overfitting statistics: probabilistic and deflated Sharpe ratios, and the probability of
backtest overfitting (PBO) by combinatorially symmetric cross-validation (CSCV).

References:

* D. H. Bailey, M. López de Prado (2012), "The Sharpe Ratio Efficient Frontier" (PSR).
* D. H. Bailey, M. López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5).
* D. H. Bailey, J. Borwein, M. López de Prado, Q. J. Zhu (2015), "The Probability of Backtest
  Overfitting", Journal of Computational Finance 20(4).

Units: every Sharpe ratio here is **per observation** (per bar: not annualised), because that is
what the PSR/DSR formulas are written in. Divide an annualised Sharpe by ``sqrt(periods per year)``
before passing it (:func:`deannualise`). Kurtosis is the ordinary (non-excess) kurtosis: 3 for a
normal distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from numba import njit
from scipy import special

EULER_GAMMA = 0.5772156649015329


def deannualise(sharpe_annual: float, periods_per_year: float) -> float:
    """Per-observation Sharpe ratio from an annualised one (``SR / sqrt(periods_per_year)``)."""
    return float(sharpe_annual) / math.sqrt(float(periods_per_year))


def sharpe_ratio(returns: np.ndarray | pd.Series) -> float:
    """Per-observation Sharpe ratio ``mean / std`` (ddof=1) of simple returns, not annualised.

    A series without variance (e.g. a strategy that never trades) has Sharpe 0: it took no risk
    and carries no information. NaNs are ignored.
    """
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return float("nan")
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else 0.0


def return_moments(returns: np.ndarray | pd.Series) -> dict[str, float]:
    """Per-observation Sharpe, skewness, (non-excess) kurtosis and count of a return series.

    Returns ``{"sharpe": ..., "skew": ..., "kurtosis": ..., "n_obs": ...}`` with the population
    (biased) moment estimators the DSR paper uses; a flat series gets skew 0 and kurtosis 3.
    """
    r = np.asarray(returns, dtype=float)
    r = r[np.isfinite(r)]
    n = int(r.size)
    if n < 2 or r.std() == 0:
        return {"sharpe": sharpe_ratio(r) if n >= 2 else float("nan"), "skew": 0.0,
                "kurtosis": 3.0, "n_obs": float(n)}
    # Plain numpy (scipy.stats.skew/kurtosis cost ~1 ms each: too slow inside sweeps).
    d = r - r.mean()
    d2 = d * d
    m2 = float(d2.mean())
    m3 = float(np.dot(d2, d)) / n
    m4 = float(np.dot(d2, d2)) / n
    return {
        "sharpe": sharpe_ratio(r),
        "skew": m3 / m2**1.5,
        "kurtosis": m4 / m2**2,
        "n_obs": float(n),
    }


def probabilistic_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
    sharpe_benchmark: float = 0.0,
) -> float:
    """Probabilistic Sharpe ratio: P(true Sharpe > ``sharpe_benchmark``), a probability in [0, 1].

    ``PSR = Φ[(SR − SR*)·sqrt(T − 1) / sqrt(1 − γ3·SR + (γ4 − 1)/4·SR²)]`` with per-observation
    Sharpe ratios, ``T = n_obs`` returns, skewness γ3 and non-excess kurtosis γ4.
    """
    if n_obs < 2:
        raise ValueError(f"PSR needs at least 2 observations, got n_obs={n_obs}")
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if var <= 0:
        # Only reachable with inconsistent moments (kurtosis < 1 + skew² is impossible).
        raise ValueError(
            f"inconsistent moments: 1 - skew*SR + (kurtosis-1)/4*SR^2 = {var:.4g} <= 0 "
            f"(skew={skew}, kurtosis={kurtosis}, sharpe={sharpe}); kurtosis is the non-excess one"
        )
    z = (sharpe - sharpe_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var)
    return float(special.ndtr(z))  # the standard normal CDF (stats.norm.cdf: ~60 us a call)


def expected_max_sharpe(n_trials: float, sharpe_variance: float, sharpe_mean: float = 0.0) -> float:
    """Expected maximum per-observation Sharpe of ``n_trials`` independent zero-skill trials.

    ``E[max SR] ≈ mean + sqrt(V)·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))`` (γ: Euler–
    Mascheroni), where ``V`` is the variance of the trials' Sharpe ratios. One trial: no selection,
    so the mean itself.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if sharpe_variance < 0:
        raise ValueError(f"sharpe_variance must be >= 0, got {sharpe_variance}")
    if n_trials == 1:
        return float(sharpe_mean)
    # special.ndtri is the standard normal quantile (what stats.norm.ppf calls, ~30x cheaper)
    z = (1 - EULER_GAMMA) * special.ndtri(1 - 1 / n_trials) + EULER_GAMMA * special.ndtri(
        1 - 1 / (n_trials * math.e)
    )
    return float(sharpe_mean + math.sqrt(sharpe_variance) * z)


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    n_trials: float,
    sharpe_variance: float,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Deflated Sharpe ratio: the PSR against the expected maximum Sharpe of ``n_trials`` trials.

    All Sharpe inputs are per observation. Returns a probability in [0, 1]: the chance that the
    selected strategy's true Sharpe is above what the best of ``n_trials`` skill-less trials would
    show. Values below 0.95 mean the selection is not significant at 5%.
    """
    sr0 = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe, n_obs, skew, kurtosis, sharpe_benchmark=sr0)


@dataclass
class DSRResult:
    """The deflated Sharpe ratio of a selection, with everything that went into it."""

    dsr: float                   # probability in [0, 1]
    psr: float                   # PSR against 0 (no multiple-testing correction)
    sharpe: float                # selected trial's per-bar Sharpe
    sharpe_benchmark: float      # expected max per-bar Sharpe under the null (SR0)
    n_trials: int
    sharpe_variance: float       # variance of the trials' per-bar Sharpes
    n_obs: int
    skew: float
    kurtosis: float

    def to_dict(self) -> dict[str, float]:
        """Plain floats/ints, JSON-ready."""
        return {k: (float(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def deflated_sharpe_from_trials(
    trial_sharpes: np.ndarray | pd.Series,
    best_returns: np.ndarray | pd.Series,
    n_trials: int | None = None,
) -> DSRResult:
    """DSR of the best trial given all trials' per-bar Sharpes and the best trial's returns.

    ``n_trials`` defaults to the number of finite trial Sharpes (an upper bound on the number of
    *independent* trials; correlated parameter sets make the DSR conservative).
    """
    srs = np.asarray(trial_sharpes, dtype=float)
    srs = srs[np.isfinite(srs)]
    if srs.size == 0:
        raise ValueError("no finite trial Sharpe ratios: nothing to deflate")
    n = int(n_trials if n_trials is not None else srs.size)
    var = float(srs.var(ddof=1)) if srs.size > 1 else 0.0
    m = return_moments(best_returns)
    n_obs = int(m["n_obs"])
    sr0 = expected_max_sharpe(n, var)
    return DSRResult(
        dsr=probabilistic_sharpe_ratio(m["sharpe"], n_obs, m["skew"], m["kurtosis"], sr0),
        psr=probabilistic_sharpe_ratio(m["sharpe"], n_obs, m["skew"], m["kurtosis"], 0.0),
        sharpe=m["sharpe"],
        sharpe_benchmark=sr0,
        n_trials=n,
        sharpe_variance=var,
        n_obs=n_obs,
        skew=m["skew"],
        kurtosis=m["kurtosis"],
    )


# --- Probability of backtest overfitting (CSCV) ---------------------------------------------


@dataclass
class PBOResult:
    """Outcome of combinatorially symmetric cross-validation.

    ``logits[c]`` is ``ln(ω/(1−ω))`` where ω is the relative out-of-sample rank (in (0, 1), 1 =
    best) of the trial that was best in-sample in combination ``c``; ``pbo`` is the share of
    logits ≤ 0 (the IS winner was at or below the OOS median). ``is_performance`` and
    ``oos_performance`` are the degradation pairs (the IS winner's metric in and out of sample),
    ``prob_loss`` the share of combinations where that OOS metric is negative, and
    ``degradation_slope``/``degradation_intercept`` the least-squares line OOS ~ IS.
    """

    pbo: float
    logits: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    best_is_trial: np.ndarray          # column index chosen in-sample, per combination
    prob_loss: float
    degradation_slope: float
    degradation_intercept: float
    n_splits: int
    n_combinations: int
    n_trials: int
    n_obs: int                         # rows used (T rounded down to a multiple of n_splits)
    metric: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (arrays as lists)."""
        return {
            "pbo": self.pbo,
            "prob_loss": self.prob_loss,
            "degradation_slope": self.degradation_slope,
            "degradation_intercept": self.degradation_intercept,
            "n_splits": self.n_splits,
            "n_combinations": self.n_combinations,
            "n_trials": self.n_trials,
            "n_obs": self.n_obs,
            "metric": self.metric,
            "logits": self.logits.tolist(),
            "is_performance": self.is_performance.tolist(),
            "oos_performance": self.oos_performance.tolist(),
            "best_is_trial": self.best_is_trial.tolist(),
        }


@njit(cache=True)
def _add_rows(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(out)):
        out[i] = a[i] + b[i]


@njit(cache=True)
def _half_score(sums: np.ndarray, sumsq: np.ndarray, count: float, sharpe: bool,
                out: np.ndarray) -> None:
    """Per-column metric of ``count`` returns from their sums (and sums of squares): the mean,
    or the Sharpe ratio (mean / std, ddof=1); written branch-free so that it vectorises."""
    if not sharpe:
        for i in range(len(out)):
            out[i] = sums[i] / count
        return
    for i in range(len(out)):
        s = sums[i]
        mean = s / count
        var = (sumsq[i] - s * mean) / (count - 1.0)
        var = 0.0 if var < 0.0 else var  # (a NaN stays NaN, as np.maximum)
        sd = np.sqrt(var)
        # No variance (never traded, or constant): Sharpe 0, consistent with sharpe_ratio().
        # Relative tolerance: the summed-moment variance of a constant column is not 0.
        flat = (sd <= 1e-12 * abs(mean)) | (sd == 0.0)
        out[i] = 0.0 if flat else mean / sd


@njit(cache=True)
def _argmax(row: np.ndarray) -> int:
    """``np.argmax(row)``: the first highest value, or the first NaN if there is one."""
    b = 0
    top = row[0]
    nan = False
    for i in range(len(row)):
        v = row[i]
        nan |= v != v
        if v > top:
            top = v
            b = i
    if nan:
        for i in range(len(row)):
            if row[i] != row[i]:
                return i
    return b


@njit(cache=True)
def _judge(is_row: np.ndarray, oos_row: np.ndarray, c: int, weight: np.ndarray,
           best: np.ndarray, below: np.ndarray, ties: np.ndarray, is_best: np.ndarray,
           oos_best: np.ndarray) -> None:
    """Combination ``c``: its in-sample winner (``np.argmax`` of ``is_row``), the winner's
    scores in and out of sample, and how many out-of-sample scores are below / equal to it,
    column ``i`` counting ``weight[i]`` times (the trials it stands for)."""
    b = _argmax(is_row)
    star = oos_row[b]
    lo = 0
    eq = 0
    for i in range(len(oos_row)):
        lo += weight[i] * (oos_row[i] < star)
        eq += weight[i] * (oos_row[i] == star)
    best[c] = b
    below[c] = lo
    ties[c] = eq
    is_best[c] = is_row[b]
    oos_best[c] = star


@njit(cache=True)
def _cscv_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                np.ndarray, np.ndarray]:
    """:func:`_judge` every combination of a ``C x N`` matrix of in-sample scores (row ``c``:
    the ``c``-th half in ``itertools.combinations`` order, whose complement is row
    ``C - 1 - c``). Returns ``(best, below, ties, is_best, oos_best)``, one value per row."""
    n_comb = scores.shape[0]
    best = np.empty(n_comb, dtype=np.intp)
    below = np.empty(n_comb, dtype=np.intp)
    ties = np.empty(n_comb, dtype=np.intp)
    is_best = np.empty(n_comb)
    oos_best = np.empty(n_comb)
    weight = np.ones(scores.shape[1], dtype=np.intp)
    for c in range(n_comb):
        _judge(scores[c], scores[n_comb - 1 - c], c, weight, best, below, ties, is_best,
               oos_best)
    return best, below, ties, is_best, oos_best


@njit(cache=True)
def _cscv_outputs(n_blocks: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray,
                                           np.ndarray, np.ndarray]:
    """``C(S, S/2)`` (exactly, in integers) and the per-combination output arrays of the CSCV
    kernels: ``(n_comb, best, below, ties, is_best, oos_best)``."""
    n_comb = 1
    for i in range(n_blocks // 2):
        n_comb = n_comb * (n_blocks - i) // (i + 1)
    return (n_comb, np.empty(n_comb, dtype=np.intp), np.empty(n_comb, dtype=np.intp),
            np.empty(n_comb, dtype=np.intp), np.empty(n_comb), np.empty(n_comb))


@njit(cache=True)
def _next_half(comb: np.ndarray, rest: np.ndarray, n_blocks: int) -> tuple[int, int]:
    """Advance ``comb`` (a half's blocks, increasing) to the next combination in
    lexicographic order and ``rest`` to its complement (increasing), in place. Returns the
    first position of each that changed (the running sums after it are stale), or ``(-1, -1)``
    after the last combination."""
    h = len(comb)
    j = h - 1
    while j >= 0 and comb[j] == n_blocks - h + j:
        j -= 1
    if j < 0:
        return -1, -1
    comb[j] += 1
    for q in range(j + 1, h):
        comb[q] = comb[q - 1] + 1
    qfirst = h
    r = 0
    k = 0
    for blk in range(n_blocks):
        if k < h and comb[k] == blk:
            k += 1
        else:
            if r < qfirst and rest[r] != blk:
                qfirst = r
            rest[r] = blk
            r += 1
    return j, qfirst


@njit(cache=True)
def _cscv_blocks(bsum: np.ndarray, bsq: np.ndarray, half: float, sharpe: bool,
                 weight: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_cscv_scores` of the mean or Sharpe ratio of every half of ``S`` blocks, given
    each block's sums ``bsum`` and sums of squares ``bsq`` (``S x N``), without the ``C x N``
    matrix: halves are taken in pairs, combination ``c`` (``itertools.combinations`` order)
    and its complement ``C - 1 - c``; each is the other's out-of-sample half.

    Every half's sums run over its blocks in increasing order (so a half scores the same
    whichever side it is on, bit for bit as adding its blocks one by one), kept as running
    sums over the half's first ``j`` blocks: from one combination to the next only the levels
    after the first block that changed are added again (about 2 of 8 levels on average with
    16 splits, for the combination and for its complement alike)."""
    n_blocks, n = bsum.shape
    h = n_blocks // 2
    n_comb, best, below, ties, is_best, oos_best = _cscv_outputs(n_blocks)
    comb = np.arange(h)
    rest = np.arange(h, n_blocks)  # the complement, in increasing block order
    psum = np.zeros((h + 1, n))  # psum[j]: sums over comb[:j]
    psq = np.zeros((h + 1, n))
    qsum = np.zeros((h + 1, n))  # qsum[j]: sums over rest[:j]
    qsq = np.zeros((h + 1, n))
    a = np.empty(n)
    b = np.empty(n)
    pfirst = 0  # levels after these are stale
    qfirst = 0
    for c in range(n_comb // 2):
        for j in range(pfirst, h):
            _add_rows(psum[j], bsum[comb[j]], psum[j + 1])
            _add_rows(psq[j], bsq[comb[j]], psq[j + 1])
        for j in range(qfirst, h):
            _add_rows(qsum[j], bsum[rest[j]], qsum[j + 1])
            _add_rows(qsq[j], bsq[rest[j]], qsq[j + 1])
        _half_score(psum[h], psq[h], half, sharpe, a)
        _half_score(qsum[h], qsq[h], half, sharpe, b)
        _judge(a, b, c, weight, best, below, ties, is_best, oos_best)
        _judge(b, a, n_comb - 1 - c, weight, best, below, ties, is_best, oos_best)
        # next combination in lexicographic order, then its complement
        pfirst, qfirst = _next_half(comb, rest, n_blocks)
        if pfirst < 0:
            break
    return best, below, ties, is_best, oos_best


#: Keys (below) of two columns closer than this, relative to the larger, are compared on their
#: exact scores. Well above the keys' own error (a few ulp times at most 1 / ``_CANCEL``).
_BAND = 1e-9
#: A half whose ``count * sumsq - sum**2`` is below this share of ``count * sumsq`` (an almost
#: constant column: the variance is mostly rounding) is keyed by its exact score.
_CANCEL = 1e-4


@njit(cache=True, inline="always")
def _exact_score(s: float, sq: float, count: float, sharpe: bool) -> float:
    """One column of :func:`_half_score`, the same operations in the same order."""
    mean = s / count
    if not sharpe:
        return mean
    var = (sq - s * mean) / (count - 1.0)
    var = 0.0 if var < 0.0 else var
    sd = np.sqrt(var)
    flat = (sd <= 1e-12 * abs(mean)) | (sd == 0.0)
    return 0.0 if flat else mean / sd


@njit(cache=True)
def _top(key: np.ndarray) -> float:
    """The highest of ``key`` (no NaN): four running maxima, which pipeline (one ran ~3x
    slower, each step waiting for the previous one)."""
    n = len(key)
    m4 = n - n % 4
    t0 = t1 = t2 = t3 = -np.inf
    for i in range(0, m4, 4):
        t0 = max(t0, key[i])
        t1 = max(t1, key[i + 1])
        t2 = max(t2, key[i + 2])
        t3 = max(t3, key[i + 3])
    top = max(max(t0, t1), max(t2, t3))
    for i in range(m4, n):
        top = max(top, key[i])
    return top


@njit(cache=True, error_model="numpy")
def _pair_keys(ps: np.ndarray, pq: np.ndarray, qs: np.ndarray, qq: np.ndarray, count: float,
               sharpe: bool, ka: np.ndarray, kb: np.ndarray) -> tuple[float, float]:
    """Order keys of the column scores of two halves (sums ``ps``, ``pq`` into ``ka``; ``qs``,
    ``qq`` into ``kb``), cheaper than the scores (no square root): ``x|x|`` of the Sharpe ratio
    ``x`` up to a positive constant, i.e. ``s|s| / d`` with ``d = count * sq - s**2``, an
    increasing function of it (the mean itself for the mean metric). Returns the highest key
    of each half, ``(top of ka, top of kb)``.

    The two halves share one division per column: ``1 / (d_a * d_b)``, then ``s_a|s_a| * d_b``
    and ``s_b|s_b| * d_a`` times it (a division costs ~8 multiplications here; the keys are
    what bounds the CSCV: 2.9M of them for 225 columns and 16 splits). Three more roundings
    than one division, a few ulp in all: a key stays within ``_BAND / 4`` (relative) of the
    same function of the exact score, so keys further apart than ``_BAND`` order the scores;
    closer ones are decided on the exact scores. In :func:`_keyed_range`'s range every product
    stays a normal double (``d`` >= ``_CANCEL`` * 1e-120 where used, ``s**2 * d`` <= ~1e250).
    Almost constant columns (see ``_CANCEL``) are keyed from their exact score, a column
    without returns in the half (all sums 0) by its score 0: their ``d`` counts as 1 in the
    shared division, so the other half's key is its own ``s|s| / d``."""
    n = len(ka)
    if not sharpe:
        for i in range(n):
            ka[i] = ps[i] / count
            kb[i] = qs[i] / count
        return _top(ka), _top(kb)
    bad_a = 0
    bad_b = 0
    for i in range(n):  # branch-free: vectorises
        sa = ps[i]
        ca = count * pq[i]
        da = ca - sa * sa
        sb = qs[i]
        cb = count * qq[i]
        db = cb - sb * sb
        worse_a = (da <= _CANCEL * ca) & (ca > 0.0)
        worse_b = (db <= _CANCEL * cb) & (cb > 0.0)
        bad_a += worse_a
        bad_b += worse_b
        ua = da if da > _CANCEL * ca else 1.0  # (then ca > 0: da > 0)
        ub = db if db > _CANCEL * cb else 1.0
        inv = 1.0 / (ua * ub)
        ka[i] = 0.0 if ca == 0.0 else sa * abs(sa) * ub * inv
        kb[i] = 0.0 if cb == 0.0 else sb * abs(sb) * ua * inv
    if bad_a:
        _rekey_flat(ps, pq, count, ka)
    if bad_b:
        _rekey_flat(qs, qq, count, kb)
    return _top(ka), _top(kb)


@njit(cache=True, error_model="numpy")
def _rekey_flat(sums: np.ndarray, sumsq: np.ndarray, count: float, key: np.ndarray) -> None:
    """:func:`_pair_keys`' keys of a half's almost constant columns (see ``_CANCEL``) from
    their exact scores ``x``: ``x|x| * count / (count - 1)``, the same function as the others'."""
    scale = count / (count - 1.0)
    for i in range(len(key)):
        s = sums[i]
        cs = count * sumsq[i]
        if cs - s * s <= _CANCEL * cs and cs > 0.0:
            x = _exact_score(s, sumsq[i], count, True)
            key[i] = x * abs(x) * scale


@njit(cache=True)
def _first_candidate(key: np.ndarray, lo: float) -> tuple[int, int]:
    """``(first, count)`` of the columns whose key is at least ``lo`` (in-sample candidates:
    only those can hold the highest exact score). A loop that vectorises."""
    n = len(key)
    b = n
    n_cand = 0
    for i in range(n):
        cand = key[i] >= lo
        n_cand += cand
        b = min(b, i if cand else n)
    return b, n_cand


@njit(cache=True)
def _settle_winner(key: np.ndarray, lo: float, s: np.ndarray, q: np.ndarray, b: int,
                   n_cand: int, count: float, sharpe: bool) -> tuple[int, float]:
    """The in-sample winner and its exact score from the first candidate ``b``: when there are
    several candidates, the first highest exact score among them."""
    bx = _exact_score(s[b], q[b], count, sharpe)
    if n_cand > 1:
        for i in range(b + 1, len(key)):
            if key[i] >= lo:
                x = _exact_score(s[i], q[i], count, sharpe)
                if x > bx:
                    b = i
                    bx = x
    return b, bx


@njit(cache=True)
def _scan_half(key: np.ndarray, lo: float, weight: np.ndarray, w: int
               ) -> tuple[int, int, int, int, int]:
    """One pass over a half's keys doing two jobs: its in-sample candidates (keys at least
    ``lo``; ``inf``: none wanted), as :func:`_first_candidate`, and its out-of-sample count
    against the other half's winner ``w``: the columns whose score is below ``w``'s by the keys
    beyond the band, and the first and last column nearer than the band (``w`` itself and any
    column with its sums among them), to decide on exact scores (:func:`_settle_count`).
    Returns ``(first candidate, candidates, below, first near, last near)``. It vectorises."""
    n = len(key)
    ks = key[w]
    aks = abs(ks)
    b = n
    n_cand = 0
    n_lo = 0
    first = n
    last = -1
    for i in range(n):
        k = key[i]
        cand = k >= lo
        n_cand += cand
        b = min(b, i if cand else n)
        m = _BAND * (abs(k) + aks)
        d = k - ks
        n_lo += weight[i] * (d < -m)
        unsure = (d <= m) & (d >= -m)
        first = min(first, i if unsure else n)
        last = max(last, i if unsure else -1)
    return b, n_cand, n_lo, first, last


@njit(cache=True)
def _settle_count(key: np.ndarray, s: np.ndarray, q: np.ndarray, weight: np.ndarray, w: int,
                  star: float, n_lo: int, first: int, last: int, count: float,
                  sharpe: bool) -> tuple[int, int]:
    """:func:`_scan_half`'s counts completed on exact scores for the columns near the winner
    ``w`` (out-of-sample score ``star``): near ties, sets differing by rounding, often
    adjacent, ``w`` itself and the columns with its sums (whose exact score is ``star``, bit
    for bit: the same operations on the same values). Returns ``(below, equal)``. The exact
    scores are computed only here (in one loop with the counting, the compiler computed them
    for every column)."""
    ks = key[w]
    aks = abs(ks)
    n_eq = 0
    for i in range(first, last + 1):
        d = key[i] - ks
        m = _BAND * (abs(key[i]) + aks)
        if (d <= m) & (d >= -m):
            x = _exact_score(s[i], q[i], count, sharpe)
            n_lo += weight[i] * (x < star)
            n_eq += weight[i] * (x == star)
    return n_lo, n_eq


@njit(cache=True)
def _judge_pair(ka: np.ndarray, ta: float, kb: np.ndarray, tb: float, ps: np.ndarray,
                pq: np.ndarray, qs: np.ndarray, qq: np.ndarray, count: float, sharpe: bool,
                c: int, weight: np.ndarray, best: np.ndarray, below: np.ndarray,
                ties: np.ndarray, is_best: np.ndarray, oos_best: np.ndarray) -> None:
    """:func:`_judge` of combination ``c`` (half A: keys ``ka``, highest ``ta``, sums ``ps``,
    ``pq``) and of its complement ``C - 1 - c`` (half B) from the halves' keys
    (:func:`_pair_keys`) and sums: the same winners, counts and scores.

    In sample, only columns whose key is within the band of the highest key can hold the
    highest exact score; when there are several, the first highest exact score among them
    wins. Out of sample, a column's score is below / above the winner's when the keys say so
    beyond the band, equal when its sums are the winner's; any other column near the winner
    is decided on the exact scores. Three passes over the columns: A's candidates; B's
    candidates together with B's count against A's winner; A's count against B's winner."""
    n_comb = len(best)
    lo_a = ta - _BAND * abs(ta)
    lo_b = tb - _BAND * abs(tb)
    a, n_cand = _first_candidate(ka, lo_a)
    a, ax = _settle_winner(ka, lo_a, ps, pq, a, n_cand, count, sharpe)
    b, n_cand, n_lo, first, last = _scan_half(kb, lo_b, weight, a)
    star = _exact_score(qs[a], qq[a], count, sharpe)
    n_lo, n_eq = _settle_count(kb, qs, qq, weight, a, star, n_lo, first, last, count, sharpe)
    best[c] = a
    below[c] = n_lo
    ties[c] = n_eq
    is_best[c] = ax
    oos_best[c] = star
    b, bx = _settle_winner(kb, lo_b, qs, qq, b, n_cand, count, sharpe)
    _, _, n_lo, first, last = _scan_half(ka, np.inf, weight, b)
    star = _exact_score(ps[b], pq[b], count, sharpe)
    n_lo, n_eq = _settle_count(ka, ps, pq, weight, b, star, n_lo, first, last, count, sharpe)
    c = n_comb - 1 - c
    best[c] = b
    below[c] = n_lo
    ties[c] = n_eq
    is_best[c] = bx
    oos_best[c] = star


@njit(cache=True)
def _cscv_keyed(bsum: np.ndarray, bsq: np.ndarray, half: float, sharpe: bool,
                weight: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_cscv_blocks` (same halves, same running sums, same results) judging each pair
    of halves from order keys (:func:`_judge_pair`) instead of every column's exact score:
    one division per column and half instead of three and a square root. For block sums in
    the range :func:`_keyed_range` accepts. A block's sums and sums of squares are kept side
    by side in one row (``[sums | squares]``), so each running level is one addition loop."""
    n_blocks, n = bsum.shape
    h = n_blocks // 2
    n_comb, best, below, ties, is_best, oos_best = _cscv_outputs(n_blocks)
    both = np.empty((n_blocks, 2 * n))
    both[:, :n] = bsum
    both[:, n:] = bsq
    comb = np.arange(h)
    rest = np.arange(h, n_blocks)
    p = np.zeros((h + 1, 2 * n))  # p[j]: sums over comb[:j]
    q = np.zeros((h + 1, 2 * n))  # q[j]: sums over rest[:j]
    ka = np.empty(n)
    kb = np.empty(n)
    pfirst = 0
    qfirst = 0
    for c in range(n_comb // 2):
        for j in range(pfirst, h):
            blk = comb[j]
            for i in range(2 * n):
                p[j + 1, i] = p[j, i] + both[blk, i]
        for j in range(qfirst, h):
            blk = rest[j]
            for i in range(2 * n):
                q[j + 1, i] = q[j, i] + both[blk, i]
        ps, pq, qs, qq = p[h, :n], p[h, n:], q[h, :n], q[h, n:]
        ta, tb = _pair_keys(ps, pq, qs, qq, half, sharpe, ka, kb)
        _judge_pair(ka, ta, kb, tb, ps, pq, qs, qq, half, sharpe, c, weight, best, below,
                    ties, is_best, oos_best)
        # next combination in lexicographic order, then its complement
        pfirst, qfirst = _next_half(comb, rest, n_blocks)
        if pfirst < 0:
            break
    return best, below, ties, is_best, oos_best


def _keyed_range(bsum: np.ndarray, bsq: np.ndarray) -> bool:
    """Block sums for which :func:`_cscv_keyed`'s keys neither overflow nor underflow: every
    nonzero |sum| in [1e-60, 1e60] and sum of squares in [1e-120, 1e120] (a half's sums are
    then 0 or at least ~1e-76, its squares far from the double range's ends). Per-bar returns
    are nowhere near either end; anything else takes the all-exact path."""
    a = np.abs(bsum)
    nz_a = a[a > 0]
    nz_q = bsq[bsq > 0]
    return bool((nz_a.size == 0 or (nz_a.min() >= 1e-60 and nz_a.max() <= 1e60))
                and (nz_q.size == 0 or (nz_q.min() >= 1e-120 and nz_q.max() <= 1e120))
                and np.isfinite(bsum).all() and np.isfinite(bsq).all())


def _distinct_columns(bsum: np.ndarray, bsq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns with the same block sums and sums of squares, bit for bit, score the same in
    every half; ``(first, weight)``: the first column of each such group, in column order, and
    how many columns it stands for. Scoring only those gives the same winners (the first of
    equal highest scores is a group's first column), ranks (a group counts its size) and values
    as scoring all: sets that never trade, or whose parameters change nothing, are scored once."""
    n = bsum.shape[1]
    key = np.ascontiguousarray(np.vstack([bsum, bsq]).T)  # one row of bytes per column
    _, first, counts = np.unique(key.view(np.dtype((np.void, key.shape[1] * key.itemsize))
                                          ).ravel(), return_index=True, return_counts=True)
    if len(first) == n:
        return np.arange(n), np.ones(n, dtype=np.intp)
    order = np.argsort(first)
    return first[order], counts[order].astype(np.intp)


def _check_finite(m: np.ndarray) -> None:
    """Raise ValueError naming the first NaN/inf of ``m`` (row, column), if there is one."""
    if not np.isfinite(m).all():
        bad = np.argwhere(~np.isfinite(m))[0]
        raise ValueError(
            f"returns contain NaN/inf (first at row {bad[0]}, column {bad[1]}); "
            "use 0 for bars out of the market"
        )


def _block_squares(blocks: np.ndarray) -> np.ndarray:
    """``(blocks**2).sum(axis=1)`` bit for bit, one block at a time: the squares of a block go
    to a buffer with the block's own memory layout, so numpy sums them in the same order (its
    pairwise summation along the contiguous axis), without a temporary as large as the whole
    matrix (a sweep's 3,242 x 240 returns: ~1.7 ms -> ~0.5 ms, mostly page faults)."""
    n_blocks, size, n = blocks.shape
    out = np.empty((n_blocks, n))
    order = "F" if blocks.strides[1] < blocks.strides[2] else "C"
    buf = np.empty((size, n), order=order)
    for i in range(n_blocks):
        np.square(blocks[i], out=buf)
        buf.sum(axis=0, out=out[i])
    return out


def probability_of_backtest_overfitting(
    returns: np.ndarray | pd.DataFrame,
    n_splits: int = 16,
    metric: str | Callable[[np.ndarray], np.ndarray] = "sharpe",
) -> PBOResult:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado, Zhu 2015).

    Args:
        returns: ``T x N`` matrix of per-bar returns, one column per trial (parameter set), rows in
            time order. NaNs are not allowed (fill a flat period with 0).
        n_splits: ``S``, an even number of contiguous, equal-sized row blocks. The oldest
            ``T mod S`` rows are dropped so that blocks are equal. All ``C(S, S/2)`` halves are
            used as in-sample sets, their complements as out-of-sample sets.
        metric: ``"sharpe"`` (per-bar mean/std, default), ``"mean"`` (mean return), or a
            callable mapping a ``rows x N`` array to ``N`` scores (slower: evaluated per half).

    Returns:
        :class:`PBOResult`. OOS ranks use average ranks for ties; the IS winner is the first
        column with the highest IS metric.
    """
    m = np.asarray(returns, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"returns must be a 2-D T x N matrix, got shape {m.shape}")
    t, n = m.shape
    if n < 2:
        raise ValueError(f"PBO needs at least 2 trials (columns), got {n}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even number >= 2, got {n_splits}")
    if t < 2 * n_splits:
        raise ValueError(
            f"{t} rows are too few for n_splits={n_splits}: need at least 2 rows per block"
        )
    used = t - t % n_splits
    size = used // n_splits
    blocks = m[t - used:].reshape(n_splits, size, n)
    if callable(metric):
        _check_finite(m)
    elif metric not in ("sharpe", "mean"):
        raise ValueError(f"unknown metric {metric!r}: use 'sharpe', 'mean' or a callable")
    else:
        # Sum per block once (the halves add up blocks); the sums are finite when every
        # return is, which is cheaper to check on them (an overflow is then told apart).
        bsum = blocks.sum(axis=1)
        bsq = _block_squares(blocks)
        if not (np.isfinite(bsum).all() and np.isfinite(bsq).all()):
            _check_finite(m)
        _check_finite(m[:t - used])  # the oldest rows, left out of the blocks

    if callable(metric):
        name = getattr(metric, "__name__", "custom")
        combos = list(combinations(range(n_splits), n_splits // 2))
        scores = np.empty((len(combos), n))
        for c, comb in enumerate(combos):
            scores[c] = metric(blocks[list(comb)].reshape(-1, n))
        best, below, ties, is_best, oos_best = _cscv_scores(scores)
    else:
        name = metric
        half = float(size * n_splits // 2)
        first, weight = _distinct_columns(bsum, bsq)
        bsum, bsq = np.ascontiguousarray(bsum[:, first]), np.ascontiguousarray(bsq[:, first])
        kernel = _cscv_keyed if _keyed_range(bsum, bsq) else _cscv_blocks
        best, below, ties, is_best, oos_best = kernel(bsum, bsq, half, metric == "sharpe",
                                                      weight)
        best = first[best]
    n_comb = len(best)
    # Average rank (1 = worst, N = best) of the IS winner among the OOS scores, without sorting.
    ranks = 1.0 + below + 0.5 * (ties - 1)
    omega = ranks / (n + 1)
    logits = np.log(omega / (1 - omega))
    if np.ptp(is_best) > 0:
        slope, intercept = np.polyfit(is_best, oos_best, 1)
    else:
        slope, intercept = float("nan"), float(np.mean(oos_best))
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        is_performance=is_best,
        oos_performance=oos_best,
        best_is_trial=best,
        prob_loss=float(np.mean(oos_best < 0)),
        degradation_slope=float(slope),
        degradation_intercept=float(intercept),
        n_splits=n_splits,
        n_combinations=n_comb,
        n_trials=n,
        n_obs=used,
        metric=name,
    )


pbo = probability_of_backtest_overfitting
