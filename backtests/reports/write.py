"""A report folder for one run: the HTML page, the PNG charts and every result, saved.

Layout written by :func:`write_report` into ``out_dir``::

    report.html                 one self-contained page for all results (see reports.html)
    <n>-<strategy>/results.json the saved result (+ *.parquet), reloadable with
                                BacktestResult.load; `btc-backtest report` re-renders from these
    <n>-<strategy>/price.png    with ``png=True``: the PNG charts of that result (reports.png)
    <n>-<strategy>/rsi.png
    <n>-<strategy>/equity.png

:func:`load_results` finds the saved results in such a folder again, so a report can be rebuilt
from disk without re-running anything; :func:`rerender_tuning` does the same for the folder of a
saved sweep or walk-forward.

The folder is written whole (:func:`backtests._files.replace_directory`): built beside, then put
in place atomically with a run record (``btc-backtest-run.json``) holding the SHA-256 of every
file, which :func:`find_results` checks, so a report never describes other results than those
beside it. A folder btc-backtest did not write is never overwritten (``force`` writes beside
the user's files).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from backtests._files import replace_directory, verify_run_folder
from backtests.reports import PNG_DEFAULT
from backtests.reports.html import render_html
from backtests.results import RESULTS_JSON, BacktestResult
from data.frame import DataError

# The PNG charts (matplotlib) and the sweep/walk-forward pages (scipy.stats via the overfitting
# statistics) are imported where they are used: ``btc-backtest run`` writes neither by default,
# and importing them cost ~1.3 s of its start-up (python -X importtime, 2-core machine, load ~3).

SWEEP_JSON, WALKFORWARD_JSON = "sweep.json", "walkforward.json"  # written by their save()



def result_dirname(result: BacktestResult, n: int) -> str:
    """Folder name of the ``n``-th result (1-based): ``"1-oversold_bounce"``, filesystem-safe."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", result.strategy).strip("-.")[:60] or "strategy"
    return f"{n}-{name}"


def write_report(
    results: Sequence[BacktestResult] | BacktestResult,
    out_dir: str | Path,
    *,
    png: bool = PNG_DEFAULT,
    save_results: bool = True,
    title: str | None = None,
    force: bool = False,
    command: str = "",
) -> dict[str, Path]:
    """Write the report folder for ``results`` (see the module docstring); return what was written.

    ``save_results=False`` (re-rendering saved results) writes only the HTML and PNGs.
    Returns a dict: ``"html"`` → report.html, ``"dir:<n>"`` → each result's folder, and
    ``"png:<n>:<chart>"`` → each PNG (``chart`` in price, rsi, equity), and ``"png:squeeze"`` →
    squeeze.png (leverage survival, safe-leverage curve, liquidation map) when the results
    carry the job's squeeze analysis. ``force``: write into a non-empty folder btc-backtest did
    not write, beside its files; ``command`` is recorded in the run record.

    Raises:
        OutputFolderError: ``out_dir`` holds other files (and not ``force``), or cannot be
            written.
    """
    if isinstance(results, BacktestResult):
        results = [results]
    results = list(results)
    if not results:
        raise DataError("nothing to report: no backtest results")
    out = Path(out_dir)
    written: dict[str, Path] = {}

    def save_all(folders: list[Path]) -> None:
        for r, folder in zip(results, folders, strict=True):
            r.save(folder)

    def fill(tmp: Path) -> None:
        # The results are saved (Parquet: pyarrow encodes and hashes without the GIL) in a
        # thread while this one draws the PNGs and builds the page (Python): 1M minute bars,
        # two strategies: ~1.2 s of each, overlapped on two cores. The folders exist first,
        # so saving and the PNGs only add files to them; leaving the ``with`` waits for the
        # saves (and re-raises their error) even when the page fails.
        folders = [tmp / result_dirname(r, n) for n, r in enumerate(results, start=1)]
        for folder in folders:
            folder.mkdir()
        with ThreadPoolExecutor(max_workers=1) as pool:
            saving = pool.submit(save_all, folders) if save_results else None
            draw(tmp, folders)
            if saving is not None:
                saving.result()

    def draw(tmp: Path, folders: list[Path]) -> None:
        for n, (r, folder) in enumerate(zip(results, folders, strict=True), start=1):
            written[f"dir:{n}"] = folder.relative_to(tmp)
            if png:
                from backtests.reports.png import render_png  # matplotlib: see the imports

                for path in render_png(r, folder):
                    written[f"png:{n}:{path.stem}"] = path.relative_to(tmp)
        sq = results[0].data.get("squeeze")
        if png and sq and "summary" in sq:  # the market's squeeze, once per report folder
            from backtests.squeeze.plots import squeeze_summary_png  # matplotlib

            written["png:squeeze"] = Path(
                squeeze_summary_png(sq, tmp / "squeeze.png")).relative_to(tmp)
        html = render_html(results, tmp / "report.html", title=title)
        written["html"] = Path(html).relative_to(tmp)

    replace_directory(out, fill, force=force, command=command)
    # Built in a temporary folder, then moved: name the files where they are now.
    return {k: out / rel for k, rel in written.items()}


def find_results(path: str | Path) -> list[Path]:
    """The saved-result folders under ``path``: ``path`` itself when it is one, else its
    ``<n>-<strategy>/`` sub-folders holding a ``results.json`` (in ``n`` order).

    Raises:
        DataError: when no saved result is found there, or the folder's run record shows files
            of another run (or missing ones).
    """
    p = Path(path)
    if (p / RESULTS_JSON).is_file():
        return [p]
    verify_run_folder(p)  # one whole run, or refused
    found = [d for d in p.iterdir() if (d / RESULTS_JSON).is_file()] if p.is_dir() else []
    if not found:
        raise DataError(
            f"no saved backtest results in {p}",
            source=str(p),
            hint="pass a report folder written by `btc-backtest run` or one result folder",
        )

    def order(d: Path) -> tuple[int, str]:
        head = d.name.split("-", 1)[0]
        return (int(head) if head.isdigit() else 1 << 30, d.name)

    return sorted(found, key=order)


def load_results(path: str | Path) -> list[BacktestResult]:
    """The results saved under ``path`` (see :func:`find_results`), loaded."""
    return [BacktestResult.load(d) for d in find_results(path)]


def tuning_kind(path: str | Path) -> str | None:
    """``"sweep"`` or ``"walkforward"`` when ``path`` holds a saved sweep or walk-forward."""
    p = Path(path)
    if (p / SWEEP_JSON).is_file():
        return "sweep"
    if (p / WALKFORWARD_JSON).is_file():
        return "walkforward"
    return None


def rerender_tuning(path: str | Path, out: str | Path) -> Path:
    """Re-render the page of the sweep or walk-forward saved in ``path`` as ``out`` (an .html
    file); return it.

    Raises:
        DataError: when ``path`` holds neither.
    """
    kind = tuning_kind(path)
    if kind == "sweep":  # scipy.stats: imported when needed, see the imports
        from backtests.reports.sweep_page import write_sweep_report
        from backtests.tuning.sweep import SweepResult

        return write_sweep_report(SweepResult.load(path), out)
    if kind == "walkforward":
        from backtests.reports.walkforward_page import write_walkforward_report
        from backtests.tuning.walkforward import WalkForwardResult

        return write_walkforward_report(WalkForwardResult.load(path), out)
    raise DataError(f"no saved sweep or walk-forward in {path}", source=str(path),
                    hint="pass a folder written by `btc-backtest sweep` or `walkforward`")
