"""backtests.persist: which object columns are stored as plain strings and which as JSON text,
round trips, and the caller's frame left as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from backtests.persist import (
    frame_for_parquet,
    load_frames,
    read_manifest,
    save_folder,
    write_parquet,
)


def test_object_columns_plain_or_json_and_the_input_untouched(tmp_path):
    idx = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC", name="time")
    df = pd.DataFrame({
        "text": pd.Series(["a", None, "c", "d"], index=idx, dtype=object),
        "np_text": pd.Series([np.str_("x"), "y", None, "z"], index=idx, dtype=object),
        "mixed": pd.Series(["a", 1.5, {"k": [1, 2]}, float("nan")], index=idx, dtype=object),
        "number": [1.0, 2.0, np.nan, 4.0],
    }, index=idx)
    before = df.copy(deep=True)
    out, notes = frame_for_parquet(df, "f")
    assert notes["json_columns"] == ["mixed"]
    assert out["mixed"].iloc[2] == '{"k": [1, 2]}' and out["text"].iloc[0] == "a"
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is not changed
    assert df["mixed"].iloc[2] == {"k": [1, 2]}
    save_folder(tmp_path / "r", "m.json", {}, {"f": df})
    back = load_frames(tmp_path / "r", read_manifest(tmp_path / "r", "m.json", "result"))["f"]
    assert back["text"].tolist() == ["a", None, "c", "d"]
    assert back["np_text"].tolist() == ["x", "y", None, "z"]
    assert back["mixed"].iloc[:3].tolist() == ["a", 1.5, {"k": [1, 2]}]
    assert np.isnan(back["mixed"].iloc[3])
    np.testing.assert_array_equal(back["number"], df["number"])


def test_write_parquet_dictionary_encodes_only_labels_and_reads_back_as_pandas_wrote_it(tmp_path):
    n = 5_000
    rng = np.random.default_rng(3)
    df = pd.DataFrame({
        "close": rng.normal(100, 5, n), "bar": np.arange(n), "ok": rng.random(n) > 0.5,
        "time": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
        "state": pd.Categorical(rng.choice(["low", "mid", "high"], n), ordered=True),
        "tag": pd.array(rng.choice(["a", "b", None], n), dtype="string"),
        "note": rng.choice(["x", "y"], n).astype(object),
    }, index=pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC", name="time_index"))
    write_parquet(df, tmp_path / "new.parquet")
    df.to_parquet(tmp_path / "default.parquet", engine="pyarrow", index=True)
    new = pd.read_parquet(tmp_path / "new.parquet")
    pd.testing.assert_frame_equal(new, pd.read_parquet(tmp_path / "default.parquet"),
                                  check_exact=True)
    pd.testing.assert_frame_equal(new, df, check_exact=True, check_freq=False)
    meta = pq.ParquetFile(tmp_path / "new.parquet").metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                 for i in range(meta.num_columns)}
    dictionary = {c for c, e in encodings.items() if any("DICTIONARY" in x for x in e)}
    assert dictionary == {"state", "tag", "note"}
