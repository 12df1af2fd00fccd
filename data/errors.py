"""The data error type, in a module of its own that imports nothing heavy: modules that only
raise it (``indicators.core``) need not import pandas. :mod:`data.frame` re-exports it."""

from __future__ import annotations

import sys


class DataError(ValueError):
    """Bad input data, with enough context to find and fix it.

    Attributes:
        what: one-line description of the problem.
        source: file name (or other origin) of the data, if known.
        row: 1-based line number in the source file (header counted), if known.
        timestamp: the offending bar's timestamp, if known.
        hint: how to fix it.
    """

    def __init__(
        self,
        what: str,
        *,
        source: str | None = None,
        row: int | None = None,
        timestamp: object = None,
        hint: str | None = None,
    ) -> None:
        self.what = what
        self.source = source
        self.row = row
        self.timestamp = timestamp
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.timestamp is not None:
            ts = self.timestamp
            pd = sys.modules.get("pandas")  # a Timestamp exists only once pandas is imported
            if pd is not None and isinstance(ts, pd.Timestamp):
                ts = ts.isoformat()
            where.append(f"timestamp {ts}")
        msg = (", ".join(where) + ": " if where else "") + self.what
        if self.hint:
            msg += f" (fix: {self.hint})"
        return msg
