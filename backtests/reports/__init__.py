"""Reports: read saved results and show them (never recompute).

``html`` (the run page) built from ``tables`` (formatted rows), ``chart_data`` (packed chart
columns), ``cards`` (page blocks, and how to add one), ``badges`` (trust checks) and ``assets``
(chart library, templates); ``png`` (static charts); ``write`` (a report folder); ``format`` (how
numbers and dates are written, also used by the CLI).
"""
