"""The read side: per-user lookups over the stream's aggregates and the HTTP API. Redis only: no torch, no Spark."""
