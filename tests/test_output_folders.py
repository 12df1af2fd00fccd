"""Output folders (backtests._files): nothing of the user's is deleted or overwritten, our own
results are replaced whole, and `report DIR` reads only one whole run from inside DIR."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from backtests._files import (
    RUN_RECORD,
    OutputFolderError,
    check_output_folder,
    read_run_record,
    remove_stale_temporaries,
    replace_directory,
    verify_run_folder,
    write_text_atomic,
)
from backtests.cli import main
from backtests.reports.write import load_results, write_report
from data.frame import DataError
from tests.factories import make_result


def _fill(files: dict[str, str]):
    def fill(tmp: Path) -> None:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)

    return fill


def test_new_folder_gets_a_run_record_with_every_file(tmp_path):
    out = tmp_path / "out"
    replace_directory(out, _fill({"a.txt": "1", "sub/b.txt": "2"}))
    record = read_run_record(out)
    assert sorted(record["files"]) == ["a.txt", "sub/b.txt"]
    assert record["entries"] == ["a.txt", "sub"] and len(record["run_id"]) == 12
    assert verify_run_folder(out) == record


def test_our_folder_is_replaced_whole(tmp_path):
    out = tmp_path / "out"
    replace_directory(out, _fill({"1-a/x.txt": "old", "2-b/x.txt": "old"}))
    replace_directory(out, _fill({"1-a/x.txt": "new"}))
    assert sorted(p.name for p in out.iterdir()) == ["1-a", RUN_RECORD]  # 2-b is gone
    assert (out / "1-a" / "x.txt").read_text() == "new"
    assert not [p for p in tmp_path.iterdir() if p.name != "out"]  # no temporaries beside


def test_a_folder_of_the_users_is_refused_and_untouched(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputFolderError, match=r"holds files btc-backtest did not write "
                                                r"\(thesis.tex\).*--force"):
        replace_directory(out, _fill({"report.html": "x"}))
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    assert not [p for p in tmp_path.iterdir() if p.name != "mine"]


def test_a_users_file_added_to_our_folder_protects_it(tmp_path):
    out = tmp_path / "out"
    replace_directory(out, _fill({"report.html": "old"}))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"notes\.txt"):
        replace_directory(out, _fill({"report.html": "new"}))
    assert (out / "notes.txt").read_text() == "mine"


def test_force_writes_beside_the_users_files_and_replaces_only_ours(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    replace_directory(out, _fill({"report.html": "1", "1-a/x": "1", "2-b/x": "1"}), force=True)
    replace_directory(out, _fill({"report.html": "2", "1-a/x": "2"}), force=True)
    assert sorted(p.name for p in out.iterdir()) == ["1-a", RUN_RECORD, "notes.txt",
                                                     "report.html"]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "report.html").read_text() == "2"
    verify_run_folder(out)


def test_force_never_overwrites_a_users_file_of_the_same_name(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.html").write_text("the user's own page")
    with pytest.raises(OutputFolderError, match=r"report\.html already exist"):
        replace_directory(out, _fill({"report.html": "ours"}), force=True)
    assert (out / "report.html").read_text() == "the user's own page"


def test_force_never_overwrites_a_users_file_named_like_our_record(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / RUN_RECORD).write_text("my own notes, not a run record")
    with pytest.raises(OutputFolderError, match="already exist"):
        replace_directory(out, _fill({"report.html": "ours"}), force=True)
    assert (out / RUN_RECORD).read_text() == "my own notes, not a run record"
    assert sorted(p.name for p in out.iterdir()) == [RUN_RECORD]


@pytest.mark.parametrize("spec", [".", "..", "./", "sub/.."])
def test_current_folder_and_parents_are_refused_with_the_way_out(tmp_path, monkeypatch, spec):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "keep.txt").write_text("x")
    monkeypatch.chdir(work)
    with pytest.raises(OutputFolderError, match=r"current folder|parent of the current") as err:
        check_output_folder(spec)
    assert "--out results/run1" in str(err.value) and "--force" in str(err.value)
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt", "sub"]


def test_force_into_the_current_folder_works_in_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    replace_directory(".", _fill({"report.html": "r"}), force=True)
    assert (tmp_path / "keep.txt").read_text() == "x"
    assert (tmp_path / "report.html").read_text() == "r"
    assert read_run_record(tmp_path)["entries"] == ["report.html"]


def test_a_file_is_not_a_folder_and_unwritable_places_fail_early(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputFolderError, match="not a folder"):
        check_output_folder(tmp_path / "f")
    with pytest.raises(OutputFolderError, match="cannot write there"):
        check_output_folder("/proc/btc-backtest-test/out")


def test_failure_inside_fill_leaves_the_old_run(tmp_path):
    out = tmp_path / "out"
    replace_directory(out, _fill({"a": "old"}))

    def boom(tmp: Path) -> None:
        (tmp / "a").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        replace_directory(out, boom)
    assert (out / "a").read_text() == "old" and verify_run_folder(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_temporaries_of_dead_processes_are_removed_only(tmp_path):
    dead = tmp_path / ".out.btc-tmp-999999999-0123abcd"
    dead.mkdir()
    alive = tmp_path / f".out.btc-tmp-{os.getpid()}-0123abcd"
    alive.mkdir()
    user = tmp_path / ".out.tmp"
    user.mkdir()
    removed = remove_stale_temporaries(tmp_path)
    assert removed == [dead] and alive.exists() and user.exists()


def test_unique_temporary_names_for_text(tmp_path):
    path = write_text_atomic(tmp_path / "r.html", "x")
    assert path.read_text() == "x" and os.listdir(tmp_path) == ["r.html"]


def test_verify_names_a_changed_file_and_a_foreign_result_folder(tmp_path):
    out = tmp_path / "out"
    replace_directory(out, _fill({"report.html": "r", "1-a/results.json": "{}"}))
    (out / "report.html").write_text("other run")
    with pytest.raises(DataError, match=r"report\.html was changed after run .* mixes runs"):
        verify_run_folder(out)
    replace_directory(out, _fill({"report.html": "r", "1-a/results.json": "{}"}))
    (out / "2-b").mkdir()
    (out / "2-b" / "results.json").write_text("{}")
    with pytest.raises(DataError, match="2-b is not part of run"):
        verify_run_folder(out)
    # The hand-made folder protects the run from replacement; once it is gone, a file
    # removed by hand is named too.
    with pytest.raises(OutputFolderError, match="2-b"):
        replace_directory(out, _fill({"report.html": "r", "1-a/results.json": "{}"}))
    shutil.rmtree(out / "2-b")
    replace_directory(out, _fill({"report.html": "r", "1-a/results.json": "{}"}))
    (out / "1-a" / "results.json").unlink()
    with pytest.raises(DataError, match=r"1-a/results\.json of run .* is missing"):
        verify_run_folder(out)


@pytest.fixture(scope="module")
def two_results():
    from tests.conftest import real

    df = real("1d_binance").iloc[-500:]
    return [make_result(df, strategy="oversold_bounce", seed=1),
            make_result(df, strategy="breakdown", seed=2)]


def test_report_cli_reads_one_whole_run_and_refuses_a_mix(tmp_path, two_results):
    out = tmp_path / "run"
    write_report(two_results, out, png=False)
    assert [r.strategy for r in load_results(out)] == ["oversold_bounce", "breakdown"]
    ok = CliRunner().invoke(main, ["report", str(out), "--no-png"])
    assert ok.exit_code == 0, ok.output
    assert verify_run_folder(out / "rerendered")
    # A second report of the same folder replaces the re-rendered one (it is ours).
    again = CliRunner().invoke(main, ["report", str(out), "--no-png"])
    assert again.exit_code == 0, again.output
    # An old-run folder copied in: refused, named.
    write_report(two_results[:1], tmp_path / "other", png=False)
    os.rename(tmp_path / "other" / "1-oversold_bounce", out / "3-old")
    bad = CliRunner().invoke(main, ["report", str(out), "--no-png"])
    assert bad.exit_code == 2 and "3-old is not part of run" in bad.output


def test_report_never_follows_file_names_out_of_the_folder(tmp_path, two_results):
    out = tmp_path / "run"
    write_report(two_results[:1], out, png=False)
    res = out / "1-oversold_bounce"
    secret = tmp_path / "secret.parquet"
    secret.write_bytes((res / "trades.parquet").read_bytes())
    for bad in ("../../secret.parquet", str(secret), "", ".."):
        manifest = json.loads((res / "results.json").read_text())
        manifest["files"]["trades"]["file"] = bad
        (res / "results.json").write_text(json.dumps(manifest))
        r = CliRunner().invoke(main, ["report", str(res), "--no-png", "--out",
                                      str(tmp_path / "x")])
        assert r.exit_code == 2, r.output
        assert "not a file name inside the result folder" in r.output


def test_run_refuses_a_users_folder_before_any_work(tmp_path):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "cv.pdf").write_bytes(b"%PDF")
    r = CliRunner().invoke(main, ["run", "--dataset", "binance", "--out", str(out)])
    assert r.exit_code == 2
    assert "holds files btc-backtest did not write (cv.pdf)" in r.output
    assert "backtesting" not in r.output  # refused before loading or running anything
    assert [p.name for p in out.iterdir()] == ["cv.pdf"]


@pytest.mark.parametrize("command", ["sweep", "walkforward"])
def test_sweep_and_walkforward_refuse_a_users_folder_and_the_current_one(
        tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("x")
    extra = ["--train", "300", "--test", "100"] if command == "walkforward" else []
    for out in ("mine", ".", ".."):
        r = CliRunner().invoke(main, [command, "oversold_bounce", "--grid", "oversold=25,30",
                                      "--dataset", "binance", *extra, "--out", out])
        assert r.exit_code == 2, r.output
        assert "--out" in r.output and "--force" in r.output
    assert (tmp_path / "mine" / "data.csv").read_text() == "x"


def test_two_writers_of_one_folder_both_finish_and_leave_one_whole_run(tmp_path):
    out = tmp_path / "out"
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        def fill(tmp: Path) -> None:
            (tmp / "report.html").write_text(tag)
            (tmp / "1-a").mkdir()
            (tmp / "1-a" / "results.json").write_text(tag)
            barrier.wait()  # both have built their run before either puts it in place

        try:
            replace_directory(out, fill)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    verify_run_folder(out)
    assert (out / "report.html").read_text() == (out / "1-a" / "results.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
