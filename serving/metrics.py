"""The HTTP API's Prometheus metrics: requests by route and status, and a latency histogram per route."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    """The API's metric families, in a registry of their own (one per app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Define the families."""
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "tone_api_requests",
            "HTTP requests, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "tone_api_request_duration_seconds",
            "HTTP request latency, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )


class MetricsMiddleware:
    """A plain ASGI middleware that counts and times every HTTP request into :class:`ApiMetrics`.

    Plain ASGI rather than Starlette's ``@app.middleware("http")``, which runs each request through extra tasks and
    streams: 14% of the API's samples under load (py-spy; docs/benchmarks.md, ``tone bench api``).
    """

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        """Wrap ``app``."""
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on; record its route template, method, status and time."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The route template, not the raw path (user ids are unbounded); the router puts it in the scope.
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - t0)
