"""Overfitting statistics against the papers' worked example, an independent reference and
hand-checked cases."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from backtests.tuning.overfit import (  # the two CSCV kernels: compared with each other
    _cscv_blocks,
    _cscv_keyed,
    _keyed_range,
    deannualise,
    deflated_sharpe_from_trials,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    return_moments,
    sharpe_ratio,
)

# Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: 100 trials,
# best annualised SR 2.5 over 5 years of daily data (T = 1250, 250 days a year), variance of the
# trials' annualised Sharpes 1/2, skewness -3, kurtosis 10 -> SR0 ≈ 0.1132 (per day), DSR ≈ 0.9004.
PAPER = dict(sr_annual=2.5, years=5, per_year=250, n_trials=100, var_annual=0.5, skew=-3.0,
             kurtosis=10.0)


def test_dsr_paper_numerical_example() -> None:
    p = PAPER
    sr = deannualise(p["sr_annual"], p["per_year"])
    var = p["var_annual"] / p["per_year"]
    t = p["years"] * p["per_year"]
    assert expected_max_sharpe(p["n_trials"], var) == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(sr, t, p["n_trials"], var, p["skew"], p["kurtosis"])
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_dsr_matches_vectorbt_reference() -> None:
    vbt_metrics = pytest.importorskip("vectorbt.returns.metrics")
    for sr, t, n, var, sk, ku in [(0.1, 1000, 50, 0.002, -0.5, 6.0), (0.05, 3000, 240, 4e-4,
                                                                        0.3, 12.0)]:
        ref = vbt_metrics.deflated_sharpe_ratio(
            est_sharpe=sr, var_sharpe=var, nb_trials=n, backtest_horizon=t, skew=sk, kurtosis=ku
        )
        assert deflated_sharpe_ratio(sr, t, n, var, sk, ku) == pytest.approx(float(ref), rel=1e-12)


def test_psr_hand_value_and_monotonicity() -> None:
    # SR 0.1 over 101 normal returns: z = 0.1 * 10 / sqrt(1 + 0.5 * 0.01)
    z = 1.0 / math.sqrt(1.005)
    assert probabilistic_sharpe_ratio(0.1, 101) == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    # Negative skew and fat tails lower confidence in the same Sharpe.
    assert probabilistic_sharpe_ratio(0.1, 101, -1.0, 8.0) < probabilistic_sharpe_ratio(0.1, 101)
    assert probabilistic_sharpe_ratio(0.0, 500) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 2"):
        probabilistic_sharpe_ratio(0.1, 1)


def test_expected_max_sharpe_grows_with_trials_and_one_trial_is_no_selection() -> None:
    assert expected_max_sharpe(1, 0.01) == 0.0
    vals = [expected_max_sharpe(n, 0.01) for n in (2, 10, 100, 1000)]
    assert vals == sorted(vals)
    # Against a Monte Carlo of the max of N standard normals (the formula is an approximation).
    rng = np.random.default_rng(0)
    mc = rng.standard_normal((20_000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(100, 1.0) == pytest.approx(mc, rel=0.01)
    with pytest.raises(ValueError):
        expected_max_sharpe(0, 1.0)


def test_moments_and_sharpe() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.015])
    assert sharpe_ratio(r) == pytest.approx(r.mean() / r.std(ddof=1))
    assert sharpe_ratio(np.zeros(10)) == 0.0
    m = return_moments(r)
    assert m["skew"] == pytest.approx(stats.skew(r))
    assert m["kurtosis"] == pytest.approx(stats.kurtosis(r, fisher=False))
    assert m["n_obs"] == 5


def test_dsr_from_trials_deflates_a_lucky_noise_winner() -> None:
    rng = np.random.default_rng(7)
    trials = rng.normal(0, 0.01, size=(1000, 200))  # 200 skill-less strategies
    srs = trials.mean(0) / trials.std(0, ddof=1)
    best = trials[:, np.argmax(srs)]
    res = deflated_sharpe_from_trials(srs, best)
    assert res.psr > 0.95          # alone, the winner looks significant...
    assert res.dsr < 0.5           # ...but not once 200 trials are accounted for
    assert res.n_trials == 200 and res.n_obs == 1000
    # A real edge survives deflation.
    strong = rng.normal(0.004, 0.01, size=1000)
    assert deflated_sharpe_from_trials(np.append(srs, sharpe_ratio(strong)), strong).dsr > 0.99


# --- PBO -----------------------------------------------------------------------------------


def _reference_pbo(m: np.ndarray, s: int) -> tuple[float, np.ndarray]:
    """Straightforward CSCV, written independently: slice, score, rank per combination."""
    t, n = m.shape
    m = m[t % s:]
    blocks = np.array_split(m, s)
    logits = []
    for comb in combinations(range(s), s // 2):
        is_rows = np.vstack([blocks[i] for i in comb])
        oos_rows = np.vstack([blocks[i] for i in range(s) if i not in comb])
        is_sr = is_rows.mean(0) / is_rows.std(0, ddof=1)
        oos_sr = oos_rows.mean(0) / oos_rows.std(0, ddof=1)
        star = int(np.argmax(is_sr))
        rank = 1 + np.sum(oos_sr < oos_sr[star]) + 0.5 * (np.sum(oos_sr == oos_sr[star]) - 1)
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    lg = np.array(logits)
    return float(np.mean(lg <= 0)), lg


def test_pbo_matches_independent_reference_on_fixed_random_matrix() -> None:
    rng = np.random.default_rng(42)
    m = rng.normal(0.0002, 0.01, size=(1003, 12)) + rng.normal(0, 0.0005, size=12)
    res = probability_of_backtest_overfitting(m, n_splits=8)
    ref_pbo, ref_logits = _reference_pbo(m, 8)
    assert res.n_combinations == 70 and res.n_obs == 1000 and res.n_trials == 12
    np.testing.assert_allclose(res.logits, ref_logits, rtol=1e-12)
    assert res.pbo == ref_pbo


def test_pbo_hand_worked_two_trials_always_reverse() -> None:
    # S=2: two halves. Trial 0 wins the first half and loses the second, trial 1 the opposite:
    # the IS winner is always the OOS loser: rank 1 of 2 -> ω = 1/3 -> logit = ln(1/2).
    m = np.array([[0.02, -0.01], [0.01, -0.02], [-0.01, 0.02], [-0.02, 0.01]])
    res = probability_of_backtest_overfitting(m, n_splits=2)
    np.testing.assert_allclose(res.logits, [math.log(0.5)] * 2)
    assert res.pbo == 1.0
    assert res.prob_loss == 1.0
    np.testing.assert_allclose(res.is_performance, [0.015 / np.std([0.02, 0.01], ddof=1)] * 2)


def test_pbo_dominant_trial_is_zero() -> None:
    rng = np.random.default_rng(1)
    m = rng.normal(0, 0.01, size=(800, 20))
    m[:, 5] += 0.01  # one trial with a large, persistent edge
    res = probability_of_backtest_overfitting(m, n_splits=10)
    assert res.pbo == 0.0
    assert (res.best_is_trial == 5).all()
    assert res.logits.min() == pytest.approx(math.log(20 / 1))  # rank N of N: ω = N/(N+1)
    assert res.prob_loss == 0.0


def test_pbo_pure_noise_is_near_one_half() -> None:
    pbos = []
    for seed in range(40):
        m = np.random.default_rng(seed).normal(0, 0.01, size=(400, 10))
        pbos.append(probability_of_backtest_overfitting(m, n_splits=8).pbo)
    assert 0.4 < np.mean(pbos) < 0.6


def test_pbo_callable_metric_equals_vectorised_path() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(0.0001, 0.01, size=(320, 7))
    fast = probability_of_backtest_overfitting(m, n_splits=6, metric="sharpe")
    slow = probability_of_backtest_overfitting(
        m, n_splits=6, metric=lambda x: x.mean(0) / x.std(0, ddof=1)
    )
    np.testing.assert_allclose(fast.logits, slow.logits, rtol=1e-12)
    mean = probability_of_backtest_overfitting(m, n_splits=6, metric="mean")
    slow_mean = probability_of_backtest_overfitting(m, n_splits=6, metric=lambda x: x.mean(0))
    np.testing.assert_allclose(mean.logits, slow_mean.logits, rtol=1e-12)


def test_pbo_flat_columns_score_zero_sharpe() -> None:
    rng = np.random.default_rng(4)
    m = rng.normal(0, 0.01, size=(200, 4))
    m[:, 2] = 0.0  # never traded
    res = probability_of_backtest_overfitting(m, n_splits=4)
    assert np.isfinite(res.logits).all()


@pytest.mark.parametrize(
    ("shape", "kw", "msg"),
    [
        ((100,), {}, "2-D"),
        ((100, 1), {}, "at least 2 trials"),
        ((100, 3), {"n_splits": 5}, "even"),
        ((10, 3), {"n_splits": 16}, "too few"),
        ((100, 3), {"metric": "sortino"}, "unknown metric"),
    ],
)
def test_pbo_bad_input(shape: tuple, kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        probability_of_backtest_overfitting(np.zeros(shape), **kw)


def test_pbo_rejects_nan_with_location() -> None:
    m = np.zeros((100, 3))
    m[17, 2] = np.nan
    with pytest.raises(ValueError, match="row 17, column 2"):
        probability_of_backtest_overfitting(m, n_splits=4)


def _matrix_pbo_before(m: np.ndarray, n_splits: int, metric: str = "sharpe") -> dict:
    """The CSCV as implemented up to 2026-11-26 (commit 8125c72): halves by a 0/1 combination
    matrix times block sums, metric per half, argmax, rank of the winner's OOS score. Kept to
    show the faster implementation gives the same results."""
    t, n = m.shape
    used = t - t % n_splits
    size = used // n_splits
    blocks = m[t - used:].reshape(n_splits, size, n)
    combos = np.array(list(combinations(range(n_splits), n_splits // 2)), dtype=np.intp)
    n_comb = len(combos)
    sel = np.zeros((n_comb, n_splits))
    sel[np.arange(n_comb)[:, None], combos] = 1.0

    def block_metric(sums: np.ndarray, sumsq: np.ndarray, counts: float) -> np.ndarray:
        mean = sums / counts
        if metric == "mean":
            return mean
        var = sumsq - sums * mean
        var /= counts - 1
        np.maximum(var, 0.0, out=var)
        sd = np.sqrt(var, out=var)
        flat = sd <= 1e-12 * np.abs(mean)
        flat |= sd == 0
        sd[flat] = 1.0
        mean[flat] = 0.0
        return np.divide(mean, sd, out=mean)

    bsum = blocks.sum(axis=1)
    bsq = (blocks**2).sum(axis=1)
    half = float(size * n_splits // 2)
    is_perf = block_metric(sel @ bsum, sel @ bsq, half)
    oos_perf = block_metric((1 - sel) @ bsum, (1 - sel) @ bsq, half)
    best = np.argmax(is_perf, axis=1)
    star = oos_perf[np.arange(n_comb), best][:, None]
    below = (oos_perf < star).sum(axis=1)
    ties = (oos_perf == star).sum(axis=1)
    ranks = 1.0 + below + 0.5 * (ties - 1)
    omega = ranks / (n + 1)
    logits = np.log(omega / (1 - omega))
    return {"logits": logits, "best": best, "is": is_perf[np.arange(n_comb), best],
            "oos": star[:, 0], "pbo": float(np.mean(logits <= 0))}


@pytest.mark.parametrize("seed", range(12))
def test_pbo_same_results_as_the_matrix_implementation(seed: int) -> None:
    # Sweep-like inputs: noise, a few never-traded (all 0) and duplicated columns, sparse
    # returns (flat while out of the market), and every even number of splits the sweep uses.
    rng = np.random.default_rng(seed)
    t, n = int(rng.integers(40, 3300)), int(rng.integers(2, 260))
    s = int(rng.choice([2, 4, 6, 8, 10, 12, 14, 16]))
    if t < 2 * s:
        t = 2 * s
    m = rng.normal(0.0002, 0.01, size=(t, n)) * (rng.random((t, n)) < rng.random(n))
    m[:, rng.integers(0, n, size=n // 10)] = 0.0
    if n > 3:
        m[:, 1] = m[:, 3]
    _assert_same_as_the_matrix_implementation(m, s)


def _assert_same_as_the_matrix_implementation(m: np.ndarray, s: int) -> None:
    for metric in ("sharpe", "mean"):
        res = probability_of_backtest_overfitting(m, n_splits=s, metric=metric)
        ref = _matrix_pbo_before(m, s, metric)
        np.testing.assert_array_equal(res.best_is_trial, ref["best"])
        np.testing.assert_array_equal(res.logits, ref["logits"])
        assert res.pbo == ref["pbo"]
        assert res.n_trials == m.shape[1]
        # Block sums are added in block order here; BLAS may add them in another order for
        # some split counts, so the scores agree to rounding (bit for bit with 16 splits here).
        np.testing.assert_allclose(res.is_performance, ref["is"], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(res.oos_performance, ref["oos"], rtol=1e-12, atol=1e-300)


def test_pbo_complement_of_combination_c_is_combination_c_reversed() -> None:
    # What the implementation relies on: with itertools' lexicographic order, the complement
    # of the c-th half is the (C-1-c)-th half.
    for s in (2, 4, 8, 16):
        combos = list(combinations(range(s), s // 2))
        for c, comb in enumerate(combos):
            assert set(combos[len(combos) - 1 - c]) == set(range(s)) - set(comb)


@pytest.mark.parametrize("seed", range(6))
def test_pbo_with_many_equal_columns_same_as_the_matrix_implementation(seed: int) -> None:
    # Sweeps repeat series (sets that never trade, parameters that change nothing): equal
    # columns are scored once and counted as many times as they occur; winners (the first of
    # equal best columns), ranks and scores must not change.
    rng = np.random.default_rng(100 + seed)
    t, distinct = int(rng.integers(200, 1500)), int(rng.integers(2, 12))
    base = rng.normal(0.0003, 0.01, size=(t, distinct)) * (rng.random((t, distinct)) < 0.4)
    base[:, 0] = 0.0  # never traded
    cols = rng.integers(0, distinct, size=int(rng.integers(distinct, 60)))
    m = base[:, cols]
    _assert_same_as_the_matrix_implementation(m, int(rng.choice([4, 8, 16])))


def _near_tie_matrix(rng: np.random.Generator, t: int, n: int) -> np.ndarray:
    """Sweep-like returns full of exact and near ties: sparse noise, columns never trading,
    columns scaled by powers of two (every half's Sharpe ratio exactly equal to the
    original's), columns equal up to rounding (the same returns summed in another order or
    nudged by an ulp: Sharpe ratios a few ulp apart) and almost constant columns."""
    m = rng.normal(0.0003, 0.01, size=(t, n)) * (rng.random((t, n)) < rng.random(n))
    k = max(n // 6, 1)
    m[:, rng.integers(0, n, size=k)] = 0.0
    for j in rng.integers(0, n, size=k):
        m[:, j] = m[:, rng.integers(0, n)] * 2.0 ** int(rng.integers(-3, 4))
    for j in rng.integers(0, n, size=k):
        src = m[:, rng.integers(0, n)]
        m[:, j] = np.where(src != 0, np.nextafter(src, np.inf), 0.0)
    for j in rng.integers(0, n, size=max(n // 20, 1)):
        m[:, j] = 0.001 + rng.normal(0, 1e-12, size=t)  # variance mostly rounding
    return m


@pytest.mark.parametrize("seed", range(10))
def test_pbo_keyed_kernel_equals_the_all_exact_kernel(seed: int) -> None:
    # The CSCV judges halves from cheap order keys and decides near ties on exact scores; it
    # must pick the same winners with the same ranks and scores as scoring every column
    # exactly, on inputs built to produce exact and near ties.
    rng = np.random.default_rng(500 + seed)
    t, n = int(rng.integers(64, 2000)), int(rng.integers(2, 120))
    s = int(rng.choice([2, 4, 8, 10, 16]))
    m = _near_tie_matrix(rng, t, n)
    used = t - t % s
    blocks = m[t - used:].reshape(s, used // s, n)
    bsum, bsq = blocks.sum(axis=1), (blocks**2).sum(axis=1)
    assert _keyed_range(bsum, bsq)
    weight = rng.integers(1, 4, size=n).astype(np.intp)
    for sharpe in (True, False):
        keyed = _cscv_keyed(bsum, bsq, float(used // 2), sharpe, weight)
        exact = _cscv_blocks(bsum, bsq, float(used // 2), sharpe, weight)
        for a, b in zip(keyed, exact, strict=True):
            np.testing.assert_array_equal(a, b)
    _assert_same_as_the_matrix_implementation(m, s)


def test_pbo_extreme_block_sums_take_the_all_exact_kernel() -> None:
    # Keys would underflow (s*|s|) or overflow: such sums are judged on exact scores only.
    rng = np.random.default_rng(9)
    m = rng.normal(0, 1e-80, size=(400, 6))
    bs = m.reshape(8, 50, 6)
    assert not _keyed_range(bs.sum(axis=1), (bs**2).sum(axis=1))
    assert not _keyed_range(np.full((8, 6), 1e70), np.full((8, 6), 1.0))
    _assert_same_as_the_matrix_implementation(m, 8)


def test_psr_and_expected_max_equal_the_scipy_stats_formulas_bit_for_bit() -> None:
    # The normal CDF and quantile come from scipy.special (what scipy.stats.norm calls): the
    # same values as the formulas written with scipy.stats.norm.
    rng = np.random.default_rng(11)
    for _ in range(300):
        sr, sr0 = rng.normal(0, 0.1, size=2)
        n_obs, skew, kurt = int(rng.integers(2, 5000)), rng.normal(0, 1), 3 + rng.exponential(2)
        var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
        z = (sr - sr0) * math.sqrt(n_obs - 1) / math.sqrt(var)
        assert probabilistic_sharpe_ratio(sr, n_obs, skew, kurt, sr0) == float(stats.norm.cdf(z))
        n, v = int(rng.integers(2, 100_000)), rng.exponential(0.01)
        ref = (1 - 0.5772156649015329) * stats.norm.ppf(1 - 1 / n) \
            + 0.5772156649015329 * stats.norm.ppf(1 - 1 / (n * math.e))
        assert expected_max_sharpe(n, v) == float(0.0 + math.sqrt(v) * ref)
