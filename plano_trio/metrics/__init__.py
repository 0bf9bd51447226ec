"""Prometheus metrics with brightstaff's names, so Plano's Grafana dashboard reads plano-trio unchanged.

Modules, one job each:

- `families`: every family's name, type, help, labels and buckets (brightstaff's, then ours);
- `labels`: brightstaff's fixed label values and the pure rules mapping a request onto them;
- `vectors`: lock-free counters and histograms for the request path, exported on scrape;
- `record`: the per-process request metrics (`GATEWAY`) that the gateway's observe stage feeds;
- `collectors`: the runtime's existing counters (state store, pool, failover, routing), read on scrape;
- `exposition`: one process's text, and several workers' texts added into one;
- `http`: the bounded `/metrics` responder; `workers`: the scrape across `--workers N`;
- `server`: `open_metrics_server` and where it binds (`plano_trio.metrics_bind_address`,
  `METRICS_BIND_ADDRESS`, `0.0.0.0:9092`).

Layer: beside `state` and `upstream`, below the gateway (which calls `record` and whose
`Runtime` the collectors read through a protocol).
"""

from plano_trio.metrics.server import MetricsServer, bind_address, open_metrics_server, share_with_workers

__all__ = ["MetricsServer", "bind_address", "open_metrics_server", "share_with_workers"]
