"""Prometheus metrics of ``vidscope serve`` (prometheus-client, one registry per app).

- ``vidscope_http_request_seconds{route,method,status}``: request latency (histogram).
- ``vidscope_segments_indexed``: segments the index holds, read when scraped.
- ``vidscope_live_lag_seconds{stream}``, ``vidscope_live_segments_dropped{stream}``,
  ``vidscope_live_events_dropped{stream}``: from each live stream's status file, when scraped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.responses import Response

from pipelines.serve import live

_LIVE_GAUGES = (("lag_seconds", "vidscope_live_lag_seconds", "how far the index is behind the stream's real time"),
                ("segments_dropped", "vidscope_live_segments_dropped", "windows dropped because encoders fell behind"),
                ("events_dropped", "vidscope_live_events_dropped", "events dropped for a sink that was down"))


class Metrics:
    def __init__(self, library: Callable[[], object], data_dir: Path) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("vidscope_http_request_seconds", "time to answer a request", ["route", "method", "status"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.registry.register(_IndexCollector(library, data_dir))

    def middleware(self, app):
        """Plain ASGI (Starlette's ``BaseHTTPMiddleware`` costs ~ms a request): times each request
        to its last byte, labelled by the route's template (bounded label values, not URLs)."""

        async def timed(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            started = time.perf_counter()
            status = [500]

            async def sending(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.latency.labels(route, scope["method"], str(status[0])).observe(time.perf_counter() - started)

        return timed

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _IndexCollector:
    def __init__(self, library: Callable[[], object], data_dir: Path) -> None:
        self.library, self.data_dir = library, data_dir

    def describe(self):
        return []  # collected on scrape only

    def collect(self):
        lib = self.library()
        if lib is not None:
            count = GaugeMetricFamily("vidscope_segments_indexed", "segments the index holds")
            count.add_metric([], len(lib.index))
            yield count
        statuses = live.statuses(self.data_dir)
        for key, name, doc in _LIVE_GAUGES:
            gauge = GaugeMetricFamily(name, doc, labels=["stream"])
            for status in statuses:
                if isinstance(status.get(key), (int, float)):
                    gauge.add_metric([str(status.get("name", "?"))], float(status[key]))
            yield gauge
