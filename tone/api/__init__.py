"""The HTTP lookup API (FastAPI) over the Redis aggregates."""
