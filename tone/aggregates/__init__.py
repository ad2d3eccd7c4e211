"""Per-user tone aggregates: the batch math, the store protocol, and its backends.

Modules: ``deltas`` (what one batch adds per user), ``store`` (the protocol every backend follows), ``redis_store``
(what the stream writes and the lookups read) and ``memory_store`` (an in-memory twin for tests of the per-record
pipeline without services).
"""
