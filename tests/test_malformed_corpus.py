"""The generated malformed-input corpus (tests/data/malformed/generated, written by its
make_corpus.py): every file is refused by ``load`` with its own DataError message, naming the
file (and the line where one is cited) with a fix; ``validate_file`` reports the same problem;
and ``data validate`` / ``data import`` refuse it with exit code 2 and that message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from backtests.cli import main
from data.frame import DataError
from data.loaders import load, validate_file

GENERATED = Path(__file__).parent / "data" / "malformed" / "generated"
CASES: dict[str, dict] = json.loads((GENERATED / "CASES.json").read_text())


def test_corpus_is_large_complete_and_reproducible(tmp_path):
    files = {p.name for p in GENERATED.iterdir()} - {"CASES.json", "make_corpus.py"}
    assert files == set(CASES)
    assert len(CASES) >= 100
    # The committed files are exactly what the script writes.
    subprocess.run([sys.executable, str(GENERATED / "make_corpus.py"), str(tmp_path)],
                   check=True, capture_output=True)
    for name in CASES:
        assert (tmp_path / name).read_bytes() == (GENERATED / name).read_bytes(), name
    assert json.loads((tmp_path / "CASES.json").read_text()) == CASES


def _check(msg: str, name: str, case: dict) -> None:
    assert msg.startswith(name), msg
    if case["row"] is not None:
        assert msg.startswith(f"{name}, row {case['row']}"), msg
    assert "(fix: " in msg, msg
    for fragment in case["fragments"]:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_load_refuses_with_its_message(name):
    case = CASES[name]
    with pytest.raises(DataError) as err:
        load(GENERATED / name, **case["options"])
    _check(str(err.value), name, case)
    if case["row"] is not None:
        assert err.value.row == case["row"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_validate_file_reports_the_same_problem(name):
    case = CASES[name]
    try:
        report = validate_file(GENERATED / name, **case["options"])
    except DataError as exc:  # a file that cannot be parsed at all
        _check(str(exc), name, case)
        return
    assert not report.ok, report.summary()
    assert any(all(f in str(e) for f in case["fragments"]) for e in report.errors), \
        report.summary()


# The CLI, on a sample across kinds (each command starts a store and a report; all of them
# would take long): the same refusal, exit code 2, one message line.
CLI_SAMPLE = ["epoch_s_2286.csv", "epoch_excel_serial.csv", "extra_field_first_row.csv",
              "gzip_in_zip.zip", "utf16_extra_field_first_row.csv", "time_daily_at_noon.csv",
              "time_one_bar.csv", "tradingview_time_and_timestamp.csv",
              "parquet_timedelta_timestamp.parquet", "iso_2300.csv"]


@pytest.mark.parametrize("name", CLI_SAMPLE)
def test_validate_and_import_refuse_alike(name, tmp_path):
    case = CASES[name]
    assert not case["options"]
    runner = CliRunner()
    path = str(GENERATED / name)
    checked = runner.invoke(main, ["data", "validate", path])
    assert checked.exit_code == 2, checked.output
    imported = runner.invoke(main, ["data", "import", path, "--data-dir", str(tmp_path)])
    assert imported.exit_code == 2, imported.output
    assert "Traceback" not in imported.output
    for fragment in case["fragments"]:
        assert fragment in checked.output and fragment in imported.output, fragment
    assert not list(tmp_path.rglob("*.parquet"))  # nothing stored
