"""Reports: read saved results and show them (never recompute).

``html`` (the run page) built from ``tables`` (formatted rows), ``chart_data`` (packed chart
columns), ``cards`` (page blocks, and how to add one), ``badges`` (trust checks) and ``assets``
(chart library, templates); ``png`` (static charts); ``write`` (a report folder); ``format`` (how
numbers and dates are written, also used by the CLI).
"""

#: PNG charts are opt-in (``--png``, ``write_report(png=True)``): the six matplotlib charts of the
#: main job cost ~1 s of CPU, five times the HTML page, over the 0.8 s rendering budget
#: (benchmarks/README.md). Declared here, without importing matplotlib, for the CLI and the API.
PNG_DEFAULT = False
