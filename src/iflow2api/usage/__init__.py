"""Usage: what each request cost and how it went, kept three ways.

- ``recorder``: rows written behind the request path into the state store, plus today's per-key
  totals in memory for daily limits;
- ``stats``: the dashboard's summary and the CSV export, as pure functions over rows;
- ``summaries``: the rows and the summary the page asks for, a recent summary served again;
- ``metrics``: Prometheus counters, histograms and gauges for ``GET /metrics``.
"""
