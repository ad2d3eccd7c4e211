"""The read side over HTTP: the live dashboard at ``/``, the JSON API, ``/metrics``; OpenAPI page at ``/docs``.

``GET /users/{user_id}/tone``, ``GET /users/{user_id}/hourly``, ``GET /users/top``, ``GET /stream/health``,
``GET /healthz``. Reads Redis only: no torch, transformers or pyspark on this path.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from serving.lookup import hourly_tone, stream_health, tone_view
from serving.metrics import ApiMetrics, MetricsMiddleware
from tone import __version__
from tone.aggregates.factory import open_store
from tone.aggregates.redis_store import settings_client
from tone.aggregates.store import TagRank
from tone.aggregates.timeline import MAX_TIMELINE_MINUTES, active_shifts, tag_report, timeline_report, top_tags
from tone.events import MAX_USER_ID_CHARS, USER_ID_PATTERN, check_user_id
from tone.labels import NEGATIVE, RankedLabel
from tone.settings import Settings, get_settings
from tone.tags import STREAM, check_tag

# A path parameter that takes any valid user id (":path" in the routes lets it hold "/"), documented in OpenAPI.
UserId = Annotated[
    str,
    Path(
        description="Any user id: 1-256 characters, not only whitespace, no control characters.",
        pattern=USER_ID_PATTERN,
        max_length=MAX_USER_ID_CHARS,
    ),
]


class ErrorBody(BaseModel):
    """What an error response holds."""

    detail: str


def unknown_user(user_id: str) -> str:
    """The 404 detail for a user the stream has never seen."""
    return f"no tweets seen from user {user_id!r}"


class FastToneLookup:
    """``GET /users/{id}/tone`` answered in front of FastAPI's routing, validation and encoding chain.

    Under wrk that chain was about 45% of a lookup's CPU (docs/benchmarks.md, ``tone bench api``). A request for a
    valid user id gets the same status, headers and bytes as the declared route (a test compares them); any other
    request, an id the user-id rule refuses included, goes on to FastAPI, which keeps the route for OpenAPI and
    for its 422s. Sits inside the metrics middleware, and names the route in the scope as the router would.
    """

    PREFIX, SUFFIX = "/users/", "/tone"

    def __init__(self, app: Any, lookup: Any, route: Any) -> None:
        """Wrap ``app``; ``lookup(user_id)`` is awaited for the public view, or None for an unknown user."""
        self.app, self.lookup, self.route = app, lookup, route

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer a valid lookup here; pass anything else on."""
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope.get("root_path")
            and path.startswith(self.PREFIX)
            and path.endswith(self.SUFFIX)
        ):
            # The route's "{user_id:path}" is greedy: "/users/a/tone/tone" is user "a/tone", as here.
            user_id = path[len(self.PREFIX) : -len(self.SUFFIX)]
            if len(path) >= len(self.PREFIX) + len(self.SUFFIX) and check_user_id(user_id) is None:
                scope["route"] = self.route
                view = await self.lookup(user_id)
                if view is None:
                    response = JSONResponse({"detail": unknown_user(user_id)}, status_code=404)
                else:
                    response = JSONResponse(view)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _erasure_route(app: FastAPI, store: Any, token: str, checked: Any) -> None:
    """``DELETE /users/{id}``, for a bearer of TONE_API_TOKEN (the API's only write)."""

    @app.delete(
        "/users/{user_id:path}",
        responses={
            401: {"description": "No or another bearer token (TONE_API_TOKEN).", "model": ErrorBody},
            422: {"description": "Not a valid user id."},
        },
    )
    def forget(
        user_id: UserId,
        authorization: Annotated[str | None, Header(description="Bearer TONE_API_TOKEN")] = None,
    ) -> dict[str, Any]:
        """Erase a user (GDPR, an account deleted): every key and the top-N entries. Idempotent.

        A tombstone keeps their older tweets out for the dedupe horizon; newer ones count afresh.
        """
        if authorization is None or not hmac.compare_digest(authorization, f"Bearer {token}"):
            raise HTTPException(401, "send Authorization: Bearer <TONE_API_TOKEN>")
        erased = store.forget(checked(user_id), time.time())
        return {"user_id": user_id, "erased": erased}


def _tag_of(value: str) -> str:
    """The tag normalised; a 404 for text no tag can be (no counted tweet has it), saying the rule."""
    try:
        return check_tag(value)
    except ValueError as exc:
        raise HTTPException(404, f"no counted tweet has this tag: {exc}") from None


def _conversation_routes(app: FastAPI, store: Any, settings: Settings) -> None:
    """The conversation's tone: tags, the stream's per-minute timeline and its shifts (docs/conversation.md)."""
    unknown_tag: dict[int | str, dict[str, Any]] = {
        404: {
            "description": "No counted tweet has this tag, or the text is no tag (a hashtag: letters, digits, _, not "
            "all digits; a cashtag: $ and 1-6 letters).",
            "model": ErrorBody,
        },
    }
    cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    @app.get("/tags")
    def tags(
        by: Annotated[TagRank, Query(description="negative, positive (mean p) or n (the most tweets).")] = NEGATIVE,
        n: Annotated[int, Query(ge=1, le=1000)] = 10,
    ) -> dict[str, Any]:
        """The most negative (positive, or most active: ``by=n``) tags."""
        return {"by": by, "min_count": settings.top_min_count, "tags": top_tags(store, by, n)}

    @app.get("/tags/{tag:path}/tone", responses=unknown_tag)
    def tag_tone(tag: Annotated[str, Path(description="#launch (as %23launch), launch, or $tsla.")]) -> dict[str, Any]:
        """A tag's tone: tweets, counts by label, means, EWMA, recent tweets and ``shifts``."""
        wanted = _tag_of(tag)
        result = tag_report(store, wanted, settings)
        if result is None:
            raise HTTPException(404, f"no counted tweet has the tag {wanted}")
        return result

    @app.get("/timeline", responses=unknown_tag)
    def timeline(
        tag: Annotated[str | None, Query(description="A tag (default: the whole stream).")] = None,
        minutes: Annotated[int, Query(ge=1, le=MAX_TIMELINE_MINUTES)] = 60,
    ) -> dict[str, Any]:
        """Per-minute tone in event time up to the latest tweet (one entry per minute), with the shifts detected."""
        wanted = STREAM if tag is None else _tag_of(tag)
        result = timeline_report(store, wanted, minutes, settings)
        if result is None:
            raise HTTPException(
                404, "no tweets counted yet" if tag is None else f"no counted tweet has the tag {wanted}"
            )
        return result

    @app.get("/shifts")
    def active() -> dict[str, Any]:
        """Shifts detected in the last hour of event time, for the stream and the 20 most active tags (cached 10 s)."""
        now = time.monotonic()
        if "v" not in cache or now - cache["v"][0] > 10:  # noqa: PLR2004 - seconds
            cache["v"] = (now, active_shifts(store, settings))
        return {"shifts": cache["v"][1]}


def create_app(settings: Settings | None = None, *, fast_lookups: bool = True) -> FastAPI:  # noqa: PLR0915 - routes
    """Build the app around one store (one Redis connection pool per process).

    ``fast_lookups`` puts :class:`FastToneLookup` in front of the tone route (off only to compare the two paths).
    """
    settings = settings or get_settings()
    store = open_store(settings, check=False)  # starts without Redis; /healthz reports it
    loop_client: dict[str, Any] = {}

    def aclient() -> Any:
        # A redis.asyncio client per event loop: its connections belong to the loop that opened them. uvicorn runs
        # one loop per process, for good; a test client may run a new one per request.
        loop = asyncio.get_running_loop()
        if loop_client.get("loop") is not loop:
            loop_client.update(loop=loop, client=settings_client(settings, asyncio=True))
        return loop_client["client"]

    app = FastAPI(
        title="tweet-tone",
        version=__version__,
        description="Live per-user tweet tone, read from the stream's Redis aggregates.",
    )
    metrics = ApiMetrics()
    page = resources.files("serving").joinpath("dashboard.html").read_text(encoding="utf-8")
    invalid_or_unknown: dict[int | str, dict[str, Any]] = {
        404: {"description": "The stream has never seen this user.", "model": ErrorBody},
        422: {"description": "Not a valid user id (see the user-id rule in the README)."},
    }

    def checked(user_id: str) -> str:
        if problem := check_user_id(user_id):
            raise HTTPException(422, problem)
        return user_id

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        """The live dashboard (one self-contained page: no CDN, charts drawn as SVG by the page itself)."""
        return page

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        """The API's Prometheus metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/stream/health",
        responses={404: {"description": "No stream with this query name has run.", "model": ErrorBody}},
    )
    def health(
        query: Annotated[str, Query(description="The stream's query name (tone stream --query).")] = "tone",
    ) -> dict[str, Any]:
        """The stream's state after its last batch: rate, lag per partition, dead letters by reason, model, drift."""
        result = stream_health(store, query, time.time())
        if result is None:
            raise HTTPException(404, f"no stream {query!r} has run against this Redis and key prefix")
        return result

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

    @app.get("/users/{user_id:path}/tone", responses=invalid_or_unknown)
    async def tone(user_id: UserId) -> dict[str, Any]:
        """One user's tone aggregates; 404 if the stream has never seen the user, 422 for an invalid id."""
        # The hot path: on the event loop with redis.asyncio (one round trip), not in a worker thread. Under load
        # the thread hand-offs and their GIL contention were most of a lookup's time (docs/benchmarks.md).
        view = await lookup(checked(user_id))
        if view is None:
            raise HTTPException(404, unknown_user(user_id))
        return view

    async def lookup(user_id: str) -> dict[str, Any] | None:
        agg = await store.user_async(aclient(), user_id)
        return None if agg is None else tone_view(agg)

    if settings.api_token is not None:
        _erasure_route(app, store, settings.api_token.get_secret_value(), checked)
    _conversation_routes(app, store, settings)

    @app.get("/users/{user_id:path}/hourly", responses=invalid_or_unknown)
    def hourly(
        user_id: UserId,
        hours: Annotated[int, Query(ge=1, le=24 * 14, description="How many hours, up to the user's last tweet.")] = 48,
    ) -> dict[str, Any]:
        """A user's label counts per UTC hour, oldest first, ending at the hour of their last tweet."""
        agg = store.user(checked(user_id))
        if agg is None:
            raise HTTPException(404, unknown_user(user_id))
        return {"user_id": user_id, "hours": hourly_tone(store, user_id, hours, agg["last_seen"] or time.time())}

    if fast_lookups:
        route = next(r for r in app.routes if getattr(r, "endpoint", None) is tone)
        app.add_middleware(FastToneLookup, lookup=lookup, route=route)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # added last: the outermost, so it sees both paths
    return app
