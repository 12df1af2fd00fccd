"""Caches a user can write: saved look-ahead verdicts reused only for identical inputs, and the
numba kernels cached under the user cache folder unless NUMBA_CACHE_DIR says otherwise (issue 17).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backtests.config import BacktestConfig
from backtests.job import lookahead_check
from backtests.tuning.audit import verdict_key
from data import cache
from tests.test_audit import CentredMean, RsiBounce, random_candles

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_verdict_is_reused_only_for_the_same_strategy_params_data_and_settings(cache_dir):
    df, cfg = random_candles(400), BacktestConfig()
    first = lookahead_check(df, RsiBounce(), cfg)
    assert first["reused"] is False and first["passed"] is True
    assert len(list((cache_dir / "audit").glob("*.json"))) == 1
    again = lookahead_check(df, RsiBounce(), cfg)
    assert again["reused"] is True
    assert {k: v for k, v in again.items() if k != "reused"} == {
        k: v for k, v in first.items() if k != "reused"}
    # any difference in the inputs runs the audit again
    assert lookahead_check(df, RsiBounce(period=10), cfg)["reused"] is False
    assert lookahead_check(df.iloc[:-1], RsiBounce(), cfg)["reused"] is False
    assert lookahead_check(df, RsiBounce(), BacktestConfig(commission=0.002))["reused"] is False
    assert lookahead_check(df, RsiBounce(), cfg, cuts=4)["reused"] is False
    assert lookahead_check(df, RsiBounce(), cfg, reuse=False)["reused"] is False
    changed = df.copy()
    changed.iloc[200, changed.columns.get_loc("close")] *= 1.0001
    assert lookahead_check(changed, RsiBounce(), cfg)["reused"] is False


def test_reaudit_replaces_the_saved_verdict(cache_dir):
    """Without reuse (``--reaudit``) the audit runs and its verdict replaces the saved one, so
    the next run reuses the fresh verdict instead of auditing a second time."""
    df, cfg = random_candles(400), BacktestConfig()
    fresh = lookahead_check(df, RsiBounce(), cfg, reuse=False)
    assert fresh["reused"] is False
    assert len(list((cache_dir / "audit").glob("*.json"))) == 1
    again = lookahead_check(df, RsiBounce(), cfg)
    assert again["reused"] is True and again["audited_at"] == fresh["audited_at"]
    assert lookahead_check(df, RsiBounce(), cfg, reuse=False)["reused"] is False


def test_a_failed_verdict_is_reused_as_failed(cache_dir):
    df = random_candles(300)
    first = lookahead_check(df, CentredMean(), BacktestConfig())
    again = lookahead_check(df, CentredMean(), BacktestConfig())
    assert first["passed"] is False and again["passed"] is False and again["reused"] is True
    assert again["first_leak"] == first["first_leak"]


def test_a_damaged_or_foreign_verdict_file_is_not_trusted(cache_dir):
    df = random_candles(300)
    lookahead_check(df, RsiBounce(), BacktestConfig())
    (path,) = (cache_dir / "audit").glob("*.json")
    path.write_text("{not json")
    assert lookahead_check(df, RsiBounce(), BacktestConfig())["reused"] is False
    saved = json.loads(path.read_text())  # rewritten whole
    saved["key"] = "0" * 64  # a verdict saved under another key
    path.write_text(json.dumps(saved))
    assert lookahead_check(df, RsiBounce(), BacktestConfig())["reused"] is False


def test_the_key_follows_the_strategy_source(tmp_path: Path):
    src = tmp_path / "my_strategy.py"
    body = ("from tests.test_audit import RsiBounce\n\n"
            "class Mine(RsiBounce):\n    name = 'mine'\n")
    keys = []
    for extra in ("", "\n# an edit\n"):
        src.write_text(body + extra)
        spec = importlib.util.spec_from_file_location("my_strategy_for_key", src)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        try:
            spec.loader.exec_module(mod)
            keys.append(verdict_key(random_candles(200), mod.Mine(), BacktestConfig(), 3))
        finally:
            del sys.modules[spec.name]
    assert None not in keys and keys[0] != keys[1]


def test_a_strategy_without_a_source_file_is_never_reused(cache_dir):
    ns: dict = {}
    exec("from tests.test_audit import RsiBounce\nclass Typed(RsiBounce):\n    pass\n", ns)
    ns["Typed"].__module__ = "__typed_in_a_console__"
    df = random_candles(200)
    assert verdict_key(df, ns["Typed"](), BacktestConfig(), 3) is None
    lookahead_check(df, ns["Typed"](), BacktestConfig())
    assert lookahead_check(df, ns["Typed"](), BacktestConfig())["reused"] is False


def test_cache_root_falls_back_when_the_preferred_folder_cannot_be_written(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.ENV_VAR, str(blocker / "cache"))
    root = cache.cache_root()
    assert root != blocker / "cache" and cache.writable_dir(root)
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "ok"))
    assert cache.cache_root() == tmp_path / "ok"


_KERNEL = ("import os\n"
           "import numpy as np\n"
           "from indicators.pivots import pivots\n"
           "x = np.sin(np.arange(60.0)) + 10\n"
           "pivots(x + 1, x - 1, 3, 3)\n"
           "print(os.environ['NUMBA_CACHE_DIR'])\n")


def _run(env: dict[str, str]) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", cache.ENV_VAR)}
    full.update(env, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _KERNEL], env=full, cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_numba_caches_kernels_under_the_user_cache_folder(tmp_path):
    told = _run({cache.ENV_VAR: str(tmp_path / "root")})
    assert told == str(tmp_path / "root" / "numba")
    assert list((tmp_path / "root" / "numba").rglob("pivots.*.nbi"))


def test_numba_cache_dir_set_by_the_user_is_honoured(tmp_path):
    told = _run({cache.ENV_VAR: str(tmp_path / "root"), "NUMBA_CACHE_DIR": str(tmp_path / "nb")})
    assert told == str(tmp_path / "nb")
    assert list((tmp_path / "nb").rglob("pivots.*.nbi"))
    assert not (tmp_path / "root" / "numba").exists()
