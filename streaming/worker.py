"""What a Python worker process keeps between Spark tasks: settings, the scorer, Kafka clients, the store.

Spark reuses Python workers across tasks and micro-batches (``spark.python.worker.reuse``); loading a model or
connecting a client per task would cost more than the task. One rule keys everything: one entry per kind of
resource, rebuilt (and the old one closed) when the configuration that built it changes. So a worker reused by
another query, or by a test with other topics and keys, never writes with the previous one's clients, and a model
swap frees the old model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerResources:
    """Per-process resources, see the module docstring."""

    def __init__(self) -> None:
        """Start empty."""
        self._items: dict[str, tuple[str, Any]] = {}
        self._refused: dict[tuple[str, str], str] = {}

    def get(self, kind: str, fingerprint: str, build: Callable[[], T], *, keep_on_failure: bool = False) -> T:
        """The ``kind`` resource built for ``fingerprint``; built now if missing or built for another one.

        ``keep_on_failure`` (a model): when building the new one raises and an old one is held, keep serving the old
        one, remember the refusal (:meth:`refusal`) and do not try that fingerprint again in this process.
        """
        held = self._items.get(kind)
        if held is not None and held[0] == fingerprint:
            value: T = held[1]
            return value
        if keep_on_failure and held is not None:
            if (kind, fingerprint) in self._refused:
                kept: T = held[1]
                return kept
            try:
                value = build()
            except Exception as exc:  # noqa: BLE001 - any load failure leaves the old model serving
                self._refused[(kind, fingerprint)] = f"{type(exc).__name__}: {exc}"[:300]
                kept = held[1]
                return kept
            self.drop(kind)
            self._items[kind] = (fingerprint, value)
            return value
        self.drop(kind)
        value = build()
        self._items[kind] = (fingerprint, value)
        return value

    def refusal(self, kind: str, fingerprint: str) -> str | None:
        """Why building ``kind`` for ``fingerprint`` failed in this process (an old one kept serving), or None."""
        return self._refused.get((kind, fingerprint))

    def drop(self, kind: str) -> None:
        """Forget (and close) the ``kind`` resource, e.g. a client whose connection broke."""
        held = self._items.pop(kind, None)
        close = getattr(held[1], "close", None) if held is not None else None
        if callable(close):
            with contextlib.suppress(Exception):
                close()


RESOURCES = WorkerResources()
