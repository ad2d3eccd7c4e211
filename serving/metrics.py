"""The HTTP API's Prometheus metrics: requests by route and status, and a latency histogram per route."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
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

    async def middleware(self, request: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        """Count and time every request under its route template (not its raw path: user ids are unbounded)."""
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.requests.labels(template, request.method, str(status)).inc()
            self.latency.labels(template).observe(time.perf_counter() - t0)
