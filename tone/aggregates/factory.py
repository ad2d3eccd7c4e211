"""The store the settings name: :func:`open_store`, the one place that picks the Redis or Redis Cluster store.

Apart from both so that neither module imports the other (the cluster store builds on the one-node store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tone.aggregates.redis_cluster import RedisClusterToneStore
from tone.aggregates.redis_store import RedisToneStore, redact_url, settings_client
from tone.aggregates.store import StoreConfig

if TYPE_CHECKING:
    from tone.settings import Settings


def open_store(settings: Settings, *, prefix: str | None = None, check: bool = True) -> RedisToneStore:
    """The store on the configured Redis (password, TLS CA from the settings), with the configured parameters.

    ``check``: ping first, so a wrong password or an unreachable server is one clear error, here (the HTTP API
    skips it: it starts without Redis and reports it on /healthz; a Redis Cluster client reads the slot map when
    made, so it needs the cluster up).
    """
    config = StoreConfig.from_settings(settings, prefix=prefix)
    cluster = settings.redis_cluster
    wait = settings.redis_wait_replicas if settings.redis_wait_replicas is not None else int(cluster)
    client = settings_client(settings)
    kind = RedisClusterToneStore if cluster else RedisToneStore
    where = redact_url(settings.redis_url)
    store = kind(client, config, settings.sink_retry_s, where, wait, settings.redis_wait_timeout_ms)
    if check:
        store.ping()
    return store
