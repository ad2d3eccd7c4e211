"""What a Python worker process keeps between Spark tasks: settings, the scorer, Kafka clients, the store.

Spark reuses Python workers across tasks and micro-batches (``spark.python.worker.reuse``); loading a model or
connecting a client per task would cost more than the task. One rule keys everything: one entry per kind of
resource, rebuilt (and the old one closed) when the configuration that built it changes. So a worker reused by
another query, or by a test with other topics and keys, never writes with the previous one's clients, and a model
swap frees the old model.

What it holds is most of the process's heap (torch, the tokenizer, the lexicons, the clients: some 200,000 objects),
and Python's cyclic garbage collector walks all of it on each full collection: two or three times in a task of
25,000 tweets, 7-10% of the task's time (docs/benchmarks.md). None of it is garbage while it is held, so after a task
that built something the worker collects once and freezes what is left (``gc.freeze``: later collections skip it;
reference counting still frees it). Dropping a resource unfreezes, so the next collection can free its cycles.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerResources:
    """Per-process resources, see the module docstring."""

    def __init__(self) -> None:
        """Start empty."""
        self._items: dict[str, tuple[str, Any]] = {}
        self._refused: dict[tuple[str, str], str] = {}
        self._built = False  # since the last settle()

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
            self._built = True
            return value
        self.drop(kind)
        value = build()
        self._items[kind] = (fingerprint, value)
        self._built = True
        return value

    def refusal(self, kind: str, fingerprint: str) -> str | None:
        """Why building ``kind`` for ``fingerprint`` failed in this process (an old one kept serving), or None."""
        return self._refused.get((kind, fingerprint))

    def settle(self) -> bool:
        """After a task: if anything was built since the last call, collect once and freeze the heap (see above)."""
        if not self._built:
            return False
        self._built = False
        gc.collect()
        gc.freeze()
        return True

    def drop(self, kind: str) -> None:
        """Forget (and close) the ``kind`` resource, e.g. a client whose connection broke."""
        held = self._items.pop(kind, None)
        if held is not None:
            gc.unfreeze()  # what only it referenced may hold cycles: let the next collection see them
        close = getattr(held[1], "close", None) if held is not None else None
        if callable(close):
            with contextlib.suppress(Exception):
                close()


RESOURCES = WorkerResources()
