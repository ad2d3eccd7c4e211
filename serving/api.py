"""``GET /users/{user_id}/tone``, ``GET /users/top``, ``GET /healthz``; OpenAPI page at ``/docs``.

Reads Redis only: no torch, transformers or pyspark on this path.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query
from pydantic import BaseModel

from serving.lookup import user_tone
from tone import __version__
from tone.aggregates.redis_store import open_store
from tone.events import MAX_USER_ID_CHARS, USER_ID_PATTERN, check_user_id
from tone.labels import NEGATIVE, RankedLabel
from tone.settings import Settings, get_settings


class ErrorBody(BaseModel):
    """What an error response holds."""

    detail: str


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app around one store (one Redis connection pool per process)."""
    settings = settings or get_settings()
    store = open_store(settings, check=False)  # starts without Redis; /healthz reports it
    app = FastAPI(
        title="tweet-tone",
        version=__version__,
        description="Live per-user tweet tone, read from the stream's Redis aggregates.",
    )

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness plus a Redis ping."""
        try:
            ok = bool(store.client.ping())
        except Exception as exc:  # noqa: BLE001 - report any Redis failure as unhealthy
            raise HTTPException(503, f"redis unreachable: {exc}") from None
        return {"status": "ok" if ok else "degraded", "version": __version__}

    @app.get("/users/top")
    def top(
        by: Annotated[RankedLabel, Query(description="Rank by mean p(by).")] = NEGATIVE,
        n: Annotated[int, Query(ge=1, le=1000)] = 10,
    ) -> dict[str, Any]:
        """Users with the highest mean probability of ``by`` (at least the minimum tweet count)."""
        return {
            "by": by,
            "min_count": settings.top_min_count,
            "users": [{"user_id": u, f"mean_p_{by}": round(score, 4)} for u, score in store.top(by, n)],
        }

    @app.get(
        "/users/{user_id:path}/tone",
        responses={
            404: {"description": "The stream has never seen this user.", "model": ErrorBody},
            422: {"description": "Not a valid user id (see the user-id rule in the README)."},
        },
    )
    def tone(
        user_id: Annotated[
            str,
            Path(
                description="Any user id: 1-256 characters, not only whitespace, no control characters.",
                pattern=USER_ID_PATTERN,
                max_length=MAX_USER_ID_CHARS,
            ),
        ],
    ) -> dict[str, Any]:
        """One user's tone aggregates; 404 if the stream has never seen the user, 422 for an invalid id."""
        if problem := check_user_id(user_id):
            raise HTTPException(422, problem)
        result = user_tone(store, user_id)
        if result is None:
            raise HTTPException(404, f"no tweets seen from user {user_id!r}")
        return result

    return app
