"""The one frozen settings object, read from environment variables (names in :mod:`tone.envvars`).

Load it with :func:`get_settings`; a bad value raises :class:`~tone.errors.ConfigError` naming the variable, the
value given and what is allowed, instead of pydantic's field-name-only message.
"""

from __future__ import annotations

import functools
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Final, Literal

from annotated_types import Ge, Gt, Le
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from tone import envvars as env
from tone.errors import ConfigError
from tone.language import DEFAULT_CANDIDATES, DEFAULT_ROUTES, DEFAULT_SCORER, UND, Precedence, Routes, normalize_tag
from tone.scoring.kinds import REGISTRY_PREFIX, SCORER_KINDS, Device, OnnxPrecision, TransformerBackend

_HOST_PORT = re.compile(r"^\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def local_checkpoint(location: str) -> str:
    """A checkpoint location (``TONE_CHECKPOINT_DIR``, ``--checkpoint``) as a path on the driver's disk.

    A ``file://`` URI gives its path; any other URI is a ValueError. A Path would keep ``s3a://b/x`` as ``s3a:/b/x``,
    a relative local directory named ``s3a:``, silently; and the job's resume logic reads the checkpoint from the
    driver's disk, so only a local path is valid (docs/operations.md, Checkpoints).
    """
    match = _URI_SCHEME.match(location)
    if match is None:
        return location
    if match.group(1).lower() == "file":
        return location[len(match.group(0)) :] or "/"
    msg = (
        f"expected a directory on the driver's disk (or a file:// URI); {match.group(1)}:// checkpoints are not "
        "supported (docs/operations.md, Checkpoints)"
    )
    raise ValueError(msg)


def checkpoint_path(location: str, option: str) -> Path:
    """:func:`local_checkpoint` for a command-line ``option``: a ConfigError that names it."""
    try:
        return Path(local_checkpoint(location))
    except ValueError as exc:
        msg = f"{option} {location!r}: {exc}"
        raise ConfigError(msg) from None


def check_scorer_spec(value: str) -> str:
    """A scorer spec: a kind, ``registry:VERSION`` or an existing artifact path; ValueError otherwise."""
    if value.startswith(REGISTRY_PREFIX) and len(value) > len(REGISTRY_PREFIX):
        return value  # a pinned registry version; fetched and verified when loaded
    if value not in SCORER_KINDS and not Path(value).expanduser().exists():
        msg = f"{value!r} is neither a scorer kind nor an existing model artifact path"
        raise ValueError(msg)
    return value


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
KafkaSource = Literal["python", "native"]
IsolationLevel = Literal["read_committed", "read_uncommitted"]
OutputGuarantee = Literal["exactly_once", "at_least_once"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


def _default_stack_dir() -> Path:
    return Path.home() / ".local" / "state" / "tweet-tone" / "stack"


def _cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tweet-tone" / name


class Settings(BaseSettings):
    """Effective configuration of one process. Frozen: read once, passed around, never mutated."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True, case_sensitive=True)

    # Kafka
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=env.KAFKA_BOOTSTRAP_SERVERS)
    kafka_topic_tweets: str = Field("tweets", min_length=1, validation_alias=env.KAFKA_TOPIC_TWEETS)
    kafka_topic_dlq: str = Field("tweets.dlq", min_length=1, validation_alias=env.KAFKA_TOPIC_DLQ)
    kafka_topic_scored: str = Field("tweets.scored", min_length=1, validation_alias=env.KAFKA_TOPIC_SCORED)
    kafka_partitions: int = Field(4, ge=1, le=1024, validation_alias=env.KAFKA_PARTITIONS)
    # Replicas of each topic the project creates (0: min(3, brokers in the cluster)) and the topics'
    # min.insync.replicas (0: replication factor - 1, at least 1), so acks=all survives one broker's loss.
    kafka_replication_factor: int = Field(0, ge=0, le=32, validation_alias=env.KAFKA_REPLICATION_FACTOR)
    kafka_min_insync_replicas: int = Field(0, ge=0, le=32, validation_alias=env.KAFKA_MIN_INSYNC_REPLICAS)
    kafka_security_protocol: SecurityProtocol = Field("PLAINTEXT", validation_alias=env.KAFKA_SECURITY_PROTOCOL)
    kafka_sasl_mechanism: SaslMechanism | None = Field(None, validation_alias=env.KAFKA_SASL_MECHANISM)
    kafka_sasl_username: str | None = Field(None, validation_alias=env.KAFKA_SASL_USERNAME)
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias=env.KAFKA_SASL_PASSWORD)
    # CA certificate (PEM) that signed the brokers' certificates, for SSL and SASL_SSL (unset: the system CAs).
    kafka_ssl_ca_file: Path | None = Field(None, validation_alias=env.KAFKA_SSL_CA_FILE)
    # How the stream reads Kafka: the project's Python Data Source (python) or Spark's own connector (native).
    kafka_source: KafkaSource = Field("python", validation_alias=env.KAFKA_SOURCE)
    # A record the broker has not acknowledged this long after it was sent fails, and the sender says so.
    kafka_delivery_timeout_s: float = Field(60.0, ge=1, le=3600, validation_alias=env.KAFKA_DELIVERY_TIMEOUT_S)
    # What the stream reads of a topic written by transactional producers: committed records only (Kafka Streams,
    # Flink and Connect write such topics), or everything, aborted transactions included.
    kafka_isolation_level: IsolationLevel = Field("read_committed", validation_alias=env.KAFKA_ISOLATION_LEVEL)
    # The stream's consumer group is this prefix + the query name: its committed offsets are what the store has
    # counted (lag in Kafka's own tools). A prefix keeps it apart from anyone else's group.
    kafka_group_prefix: str = Field("tone-stream.", min_length=1, validation_alias=env.KAFKA_GROUP_PREFIX)
    # tweets.scored and tweets.dlq: each input range's outputs in one Kafka transaction with its offsets committed
    # to that group (exactly_once; consumers read them read_committed), or sent and flushed before the count
    # (at_least_once: a retried task can send a record twice). See tone/kafka/transactions.py.
    output_guarantee: OutputGuarantee = Field("exactly_once", validation_alias=env.OUTPUT_GUARANTEE)
    # Below the brokers' transaction.max.timeout.ms (15 min by default); a transaction left open by a killed task
    # blocks read_committed readers until the task's retry takes over its id, or this long at most.
    kafka_transaction_timeout_ms: int = Field(
        60_000, ge=1000, le=900_000, validation_alias=env.KAFKA_TRANSACTION_TIMEOUT_MS
    )
    # Offsets deleted (retention) before the stream read them: fail the query saying what was lost (Spark's
    # default), or go on from the earliest offset still there and count the skipped ones in a metric.
    fail_on_data_loss: bool = Field(True, validation_alias=env.FAIL_ON_DATA_LOSS)

    # Redis
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=env.REDIS_URL)
    redis_password: SecretStr | None = Field(None, validation_alias=env.REDIS_PASSWORD)
    # CA certificate (PEM) of a rediss:// (TLS) server (unset: the system CAs).
    redis_ca_file: Path | None = Field(None, validation_alias=env.REDIS_CA_FILE)
    redis_key_prefix: str = Field("tone:", min_length=1, max_length=64, validation_alias=env.REDIS_KEY_PREFIX)
    # Tweets per atomic Redis step: a lookup waits behind at most one step, whatever the backlog (docs/benchmarks.md).
    redis_step_tweets: int = Field(500, ge=1, le=100_000, validation_alias=env.REDIS_STEP_TWEETS)
    # TONE_REDIS_URL names a node of a Redis Cluster, or several (comma-separated: the client starts from the first
    # that answers, so a seed node's loss does not stop it): per-user keys spread over its hash slots, an offset
    # marker per slot (docs/scaling.md).
    redis_cluster: bool = Field(False, validation_alias=env.REDIS_CLUSTER)
    # After each apply, wait until this many replicas have the writes (Redis WAIT), so a count the stream went on
    # from survives the master's loss; fewer within the timeout fails the task and Spark retries it (nothing counts
    # twice). Unset: 1 on a cluster, 0 on one node.
    redis_wait_replicas: int | None = Field(None, ge=0, le=16, validation_alias=env.REDIS_WAIT_REPLICAS)
    redis_wait_timeout_ms: int = Field(2000, ge=1, le=600_000, validation_alias=env.REDIS_WAIT_TIMEOUT_MS)
    # A user's keys (aggregates, recent tweets, top-N entries) expire this long after their last tweet was counted
    # (0: never). Offset markers never expire.
    user_ttl_s: int = Field(30 * 24 * 3600, ge=0, validation_alias=env.USER_TTL_S)
    # A tweet id counts once within this long after it was counted (from its counting, not its created_at, so a
    # re-run of last month's file dedupes too): a live reader's redelivery, X's backfill, a file sent twice. Its
    # ids live in its user's keys (docs/operations.md has the bytes). 0: no dedupe.
    dedupe_horizon_s: int = Field(2 * 24 * 3600, ge=0, le=366 * 24 * 3600, validation_alias=env.DEDUPE_HORIZON_S)
    # The conversation (docs/conversation.md): each tweet also counts for its hashtags and cashtags and for the whole
    # stream, in the same atomic step, with per-minute buckets in event time. A tag's keys expire this long after its
    # last counted tweet (spam makes millions of tags; the bytes per tag are in docs/operations.md).
    tags: bool = Field(True, validation_alias=env.TAGS)
    tag_ttl_s: int = Field(7 * 24 * 3600, ge=60, validation_alias=env.TAG_TTL_S)
    # A tag is on probation until it has this many tweets: its keys expire TONE_TAG_PROBATION_S after its last tweet
    # (not TONE_TAG_TTL_S) and it is not ranked, so spam's one-off tags cost memory for that long only.
    tag_recent_tweets: int = Field(5, ge=1, le=1000, validation_alias=env.TAG_RECENT_TWEETS)  # kept per tag
    tag_min_tweets: int = Field(5, ge=1, le=1_000_000, validation_alias=env.TAG_MIN_TWEETS)
    tag_probation_s: int = Field(3600, ge=60, validation_alias=env.TAG_PROBATION_S)
    # A minute is closed (the shift detector reads it) once the stream's event time is this far past its end; a tweet
    # for a closed minute still lands in it and is counted as late (tone_timeline_late_tweets_total).
    timeline_lateness_s: int = Field(120, ge=0, le=24 * 3600, validation_alias=env.TIMELINE_LATENESS_S)
    # The shift detector (tone.shifts): a CUSUM of the per-minute negative share against a baseline learned over its
    # first minutes; it fires at this log-likelihood ratio, for a change of at least this share.
    shift_threshold: float = Field(14.0, gt=0, le=1000, validation_alias=env.SHIFT_THRESHOLD)
    shift_delta: float = Field(0.3, gt=0, lt=1, validation_alias=env.SHIFT_DELTA)
    shift_baseline_minutes: int = Field(30, ge=1, le=24 * 60, validation_alias=env.SHIFT_BASELINE_MINUTES)

    # AWS / SageMaker: unset endpoint means real AWS; the local stack points it at moto.
    aws_endpoint_url: str | None = Field(None, validation_alias=env.AWS_ENDPOINT_URL)
    aws_region: str = Field("us-east-1", min_length=1, validation_alias=env.AWS_REGION)

    # Live feeds
    x_bearer_token: SecretStr | None = Field(None, validation_alias=env.X_BEARER_TOKEN)
    # X resends up to 5 minutes on reconnect for accounts that may ask (Pro, Enterprise); 0: never ask.
    x_backfill_minutes: int = Field(5, ge=0, le=5, validation_alias=env.X_BACKFILL_MINUTES)
    # Jetstream advises replaying a few seconds on reconnect: its cursor is a time, and events near it may be
    # delivered out of order. The stream's dedupe removes what is read twice.
    jetstream_rewind_s: float = Field(5.0, ge=0, le=3600, validation_alias=env.JETSTREAM_REWIND_S)

    # Tweet validation: X allows 280 characters (25k for long posts); the limit guards the scorer, not the rules.
    max_text_chars: int = Field(4000, ge=1, le=100_000, validation_alias=env.MAX_TEXT_CHARS)
    max_message_bytes: int = Field(65_536, ge=256, le=10_485_760, validation_alias=env.MAX_MESSAGE_BYTES)
    # A tweet dated more than this far after its Kafka timestamp is dead-lettered (future_timestamp): an event time
    # is data, and one far in the future would otherwise freeze the user's EWMA and last_seen.
    max_future_s: float = Field(300.0, ge=0, le=365 * 86400, validation_alias=env.MAX_FUTURE_S)
    # A dead letter (the original key and bytes, and its headers) is cut to this size, with a `truncated` header:
    # a copy of a record near the broker's limit, plus headers, would be refused (and its range's transaction with
    # it) for ever. Keep it below the producer's message.max.bytes (1,000,000) and the topic's max.message.bytes.
    dead_letter_max_bytes: int = Field(524_288, ge=4096, le=100_000_000, validation_alias=env.DEAD_LETTER_MAX_BYTES)

    # Stream and per-user aggregates
    checkpoint_dir: Path = Field(default_factory=lambda: _cache_dir("checkpoints"), validation_alias=env.CHECKPOINT_DIR)
    trigger_seconds: float = Field(2.0, gt=0, le=3600, validation_alias=env.TRIGGER_SECONDS)
    # Records per micro-batch at most (0: all available). Bounded so the first batch after downtime takes seconds,
    # not the whole backlog at once (about 4 s at the RNN's drain rate on 2 cores).
    max_per_trigger: int = Field(25_000, ge=0, validation_alias=env.MAX_PER_TRIGGER)
    # Self-healing: a failed query restarts from its checkpoint (capped exponential backoff) this many times in a
    # row without progress before `tone stream` gives up; the sinks retry a transient Redis error this long first.
    max_restarts: int = Field(10, ge=0, le=1000, validation_alias=env.MAX_RESTARTS)
    sink_retry_s: float = Field(30.0, ge=0, le=3600, validation_alias=env.SINK_RETRY_S)

    # `tone serve`: uvicorn worker processes. One process serves about one core's worth of lookups (docs/api.md).
    api_workers: int = Field(1, ge=1, le=64, validation_alias=env.API_WORKERS)
    # uvicorn's access log, a line per request; off by default: at thousands of lookups/s it costs CPU that
    # /metrics (requests and latency by route and status) already answers for.
    api_access_log: bool = Field(False, validation_alias=env.API_ACCESS_LOG)
    # The bearer token of the API's writes (DELETE /users/{id}: erase a user); unset, the API has none.
    api_token: SecretStr | None = Field(None, validation_alias=env.API_TOKEN)

    # Observability: the stream driver's Prometheus /metrics port and Spark UI port (0: off); tone drift is the
    # label mix over the last window against the model's training mix, and how often VADER disagrees with the
    # model on a sample of this share of the tweets (0: no sample).
    metrics_port: int = Field(9464, ge=0, le=65535, validation_alias=env.METRICS_PORT)
    # Where /metrics listens: loopback by default; 0.0.0.0 in a container that Prometheus scrapes from outside.
    metrics_host: str = Field("127.0.0.1", min_length=1, validation_alias=env.METRICS_HOST)
    spark_ui_port: int = Field(4040, ge=0, le=65535, validation_alias=env.SPARK_UI_PORT)
    drift_sample: float = Field(0.05, ge=0, le=1, validation_alias=env.DRIFT_SAMPLE)
    drift_window_s: float = Field(600.0, gt=0, le=86400, validation_alias=env.DRIFT_WINDOW_S)
    spark_master: str = Field("local[*]", min_length=1, validation_alias=env.SPARK_MASTER)
    # The driver's address as executors reach it, and the address it listens on: loopback for local mode and a
    # cluster on this machine; this host's name (and 0.0.0.0 to listen everywhere) for a remote cluster.
    spark_driver_host: str = Field("127.0.0.1", min_length=1, validation_alias=env.SPARK_DRIVER_HOST)
    spark_driver_bind_address: str = Field("127.0.0.1", min_length=1, validation_alias=env.SPARK_DRIVER_BIND_ADDRESS)
    # JVM artifacts from Maven Central (Kafka broker, Spark's Kafka connector), one directory per version.
    jars_dir: Path = Field(default_factory=lambda: _cache_dir("jars"), validation_alias=env.JARS_DIR)
    ewma_half_life_s: float = Field(3600.0, gt=0, validation_alias=env.EWMA_HALF_LIFE_S)
    recent_tweets: int = Field(20, ge=1, le=10_000, validation_alias=env.RECENT_TWEETS)
    top_min_count: int = Field(5, ge=1, validation_alias=env.TOP_MIN_COUNT)
    hourly_bucket_ttl_s: int = Field(7 * 24 * 3600, ge=60, validation_alias=env.HOURLY_BUCKET_TTL_S)

    # Models: the scorer is a kind (rnn | transformer | vader) or the path of a model artifact.
    scorer: str = Field("rnn", min_length=1, validation_alias=env.SCORER)
    transformer_model: str | None = Field(None, validation_alias=env.TRANSFORMER_MODEL)
    model_dir: Path = Field(default_factory=lambda: _cache_dir("models"), validation_alias=env.MODEL_DIR)
    data_dir: Path = Field(default_factory=lambda: _cache_dir("data"), validation_alias=env.DATA_DIR)
    device: Device = Field("auto", validation_alias=env.DEVICE)
    torch_threads: int = Field(0, ge=0, le=512, validation_alias=env.TORCH_THREADS)
    # 0: each scorer's own default (rnn 256; transformer 64 rows on a CPU, 1,024 on a GPU, within the token budget)
    scorer_batch_size: int = Field(0, ge=0, le=65536, validation_alias=env.SCORER_BATCH_SIZE)
    # Transformer batches are bounded by padded tokens (rows x longest row), as text-embeddings-inference does;
    # 0: 2,048 on the CPU (no faster above it on 2 cores), 65,536 on a GPU.
    scorer_token_budget: int = Field(0, ge=0, le=1 << 24, validation_alias=env.SCORER_TOKEN_BUDGET)
    transformer_backend: TransformerBackend = Field("auto", validation_alias=env.TRANSFORMER_BACKEND)
    onnx_precision: OnnxPrecision = Field("auto", validation_alias=env.ONNX_PRECISION)

    # Languages (docs/languages.md): routes map languages to scorers (`default`: the scorer above; `*`: any other
    # language; `none`: not scored); a tweet no route covers is counted by language but not scored. A tweet's own
    # declared language (X's lang, Bluesky's langs) wins over the detected one unless this says `detected`; the
    # detector chooses among the candidate languages only.
    routes: str = Field(DEFAULT_ROUTES, min_length=1, validation_alias=env.ROUTES)
    lang_precedence: Precedence = Field("declared", validation_alias=env.LANG_PRECEDENCE)
    lang_candidates: str = Field(" ".join(DEFAULT_CANDIDATES), min_length=2, validation_alias=env.LANG_CANDIDATES)

    # Model registry: a local directory or s3://bucket/prefix (one code path, tone/registry.py). The stream with
    # scorer "registry" follows the approved version, checking at most every model_refresh_s (0: before every
    # micro-batch).
    registry_uri: str = Field(default_factory=lambda: str(_cache_dir("registry")), validation_alias=env.REGISTRY_URI)
    model_refresh_s: float = Field(30.0, ge=0, le=86400, validation_alias=env.MODEL_REFRESH_S)
    approve_metric: str = Field("test_macro_f1", min_length=1, validation_alias=env.APPROVE_METRIC)
    # A candidate is approved only if its metric beats the approved model's by at least this much (or --force).
    approve_margin: float = Field(0.005, ge=0, le=1, validation_alias=env.APPROVE_MARGIN)
    # Evidence before promotion (docs/training.md, Shadow): a candidate is approved only after the stream scored at
    # least approve_min_shadow live tweets with it in shadow (0: no shadow gate) and at most approve_max_churn of
    # them changed label, or with --force --reason.
    approve_min_shadow: int = Field(200, ge=0, validation_alias=env.APPROVE_MIN_SHADOW)
    approve_max_churn: float = Field(0.2, ge=0, le=1, validation_alias=env.APPROVE_MAX_CHURN)
    # The stream's shadow candidate: empty follows the registry's shadow version (tone models shadow) when the
    # stream follows the registry; registry follows it always; none: no shadow; else any scorer spec. It scores
    # this share of the live-scored tweets (a stable sample by record).
    shadow_scorer: str = Field("", validation_alias=env.SHADOW_SCORER)
    shadow_sample: float = Field(1.0, gt=0, le=1, validation_alias=env.SHADOW_SAMPLE)
    sagemaker_role: str | None = Field(None, validation_alias=env.SAGEMAKER_ROLE)
    sagemaker_bucket: str | None = Field(None, validation_alias=env.SAGEMAKER_BUCKET)
    # The MLflow tracking server of TONE_REGISTRY_URI=mlflow://NAME (its model registry and artifact store).
    mlflow_tracking_uri: str | None = Field(None, validation_alias=env.MLFLOW_TRACKING_URI)

    # Local stack
    stack_dir: Path = Field(default_factory=_default_stack_dir, validation_alias=env.STACK_DIR)
    stack_kafka_port: int = Field(9092, ge=1, le=65535, validation_alias=env.STACK_KAFKA_PORT)
    stack_redis_port: int = Field(6379, ge=1, le=65535, validation_alias=env.STACK_REDIS_PORT)
    stack_moto_port: int = Field(5000, ge=1, le=65535, validation_alias=env.STACK_MOTO_PORT)
    # An MLflow tracking server on SQLite (for TONE_REGISTRY_URI=mlflow://...), only when asked: it takes seconds.
    stack_mlflow: bool = Field(False, validation_alias=env.STACK_MLFLOW)
    stack_mlflow_port: int = Field(5050, ge=1, le=65535, validation_alias=env.STACK_MLFLOW_PORT)
    stack_kafka_controller_port: int = Field(9093, ge=1, le=65535, validation_alias=env.STACK_KAFKA_CONTROLLER_PORT)
    # The broker's JVM heap: 512 MiB carries the project's loads on a 2-core machine (see devstack/stack.py).
    stack_kafka_heap_mb: int = Field(512, ge=128, le=65536, validation_alias=env.STACK_KAFKA_HEAP_MB)
    # Secure local stack: Kafka with SASL_SSL/SCRAM-SHA-512 and Redis with a password over TLS (fixed when the
    # state directory is first created).
    stack_secure: bool = Field(False, validation_alias=env.STACK_SECURE)
    # A cluster on one machine (docs/scaling.md): N KRaft nodes (broker+controller), a Redis Cluster of 3 masters
    # and 3 replicas, a Spark standalone master with N workers (0: none; the stream runs Spark in-process).
    stack_kafka_brokers: int = Field(1, ge=1, le=9, validation_alias=env.STACK_KAFKA_BROKERS)
    stack_redis_cluster: bool = Field(False, validation_alias=env.STACK_REDIS_CLUSTER)
    stack_spark_workers: int = Field(0, ge=0, le=8, validation_alias=env.STACK_SPARK_WORKERS)
    stack_spark_port: int = Field(7077, ge=1, le=65535, validation_alias=env.STACK_SPARK_PORT)

    log_level: LogLevel = Field("INFO", validation_alias=env.LOG_LEVEL)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        bad = [s for s in servers if not _HOST_PORT.match(s)]
        if not servers or bad:
            msg = f"expected a comma-separated list of host:port, got {value!r}"
            raise ValueError(msg)
        return ",".join(servers)

    @field_validator("redis_key_prefix")
    @classmethod
    def _check_key_prefix(cls, value: str) -> str:
        if "{" in value or "}" in value:
            msg = "must not contain { or }: in a Redis Cluster they pick a key's hash slot (the user id's braces do)"
            raise ValueError(msg)
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        urls = [u.strip() for u in value.split(",") if u.strip()]
        if not urls or any(not u.startswith(_REDIS_SCHEMES) for u in urls):
            msg = f"expected a URL starting with one of {', '.join(_REDIS_SCHEMES)} (several, comma-separated, for "
            msg += "a Redis Cluster's seed nodes)"
            raise ValueError(msg)
        return ",".join(urls)

    @field_validator("redis_cluster")
    @classmethod
    def _check_seed_nodes(cls, value: bool, info: ValidationInfo) -> bool:  # noqa: FBT001 - pydantic's shape
        if not value and "," in info.data.get("redis_url", ""):
            msg = (
                f"{env.REDIS_URL} lists several nodes, which only a Redis Cluster has (its seed nodes): set it to "
                "true, or give TONE_REDIS_URL one URL"
            )
            raise ValueError(msg)
        return value

    @field_validator("scorer")
    @classmethod
    def _check_scorer(cls, value: str) -> str:
        return check_scorer_spec(value)

    @field_validator("shadow_scorer")
    @classmethod
    def _check_shadow(cls, value: str) -> str:
        if value in ("", "registry", "none"):
            return value
        return check_scorer_spec(value)

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: str) -> str:
        routes = Routes.parse(value)
        for spec in routes.specs():
            if spec != DEFAULT_SCORER:
                check_scorer_spec(spec)
        return str(routes)

    @field_validator("lang_candidates")
    @classmethod
    def _check_candidates(cls, value: str) -> str:
        codes = []
        for raw in value.replace(",", " ").split():
            code = normalize_tag(raw)
            if code is None or code == UND:
                msg = f"{raw!r} is not a language code"
                raise ValueError(msg)
            codes.append(code)
        return " ".join(dict.fromkeys(codes))

    @field_validator("checkpoint_dir", mode="before")
    @classmethod
    def _check_checkpoint_dir(cls, value: Any) -> Any:
        return local_checkpoint(value) if isinstance(value, str) else value

    @field_validator("registry_uri")
    @classmethod
    def _check_registry(cls, value: str) -> str:
        if value.startswith("s3://"):
            if not value[5:].split("/", 1)[0]:
                msg = "expected s3://bucket[/prefix]"
                raise ValueError(msg)
            return value.rstrip("/")
        if value.startswith(("sagemaker://", "mlflow://")):
            if not value.split("://", 1)[1].strip("/"):
                msg = "expected sagemaker://GROUP_PREFIX or mlflow://REGISTERED_MODEL"
                raise ValueError(msg)
            return value.rstrip("/")
        if "://" in value:
            msg = "expected a local directory, s3://bucket[/prefix], sagemaker://GROUP_PREFIX or mlflow://NAME"
            raise ValueError(msg)
        return value

    @field_validator("aws_endpoint_url", "mlflow_tracking_uri")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            msg = "expected an http:// or https:// URL"
            raise ValueError(msg)
        return value or None

    @property
    def lang_candidates_list(self) -> list[str]:
        """The detector's candidate languages."""
        return self.lang_candidates.split()

    def route_table(self, scorer: str | None = None) -> Routes:
        """The routes with ``default`` replaced by ``scorer`` (the scorer setting when None)."""
        return Routes.parse(self.routes, default=scorer or self.scorer)

    @property
    def bootstrap_list(self) -> list[str]:
        """Bootstrap servers as a list, the form kafka-python takes."""
        return self.kafka_bootstrap_servers.split(",")


def env_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    alias = Settings.model_fields[field].validation_alias
    if not isinstance(alias, str):  # every field declares one; a new field without one is a bug
        msg = f"setting {field!r} has no environment variable"
        raise TypeError(msg)
    return alias


# What the settings with a format of their own accept, in words.
_ALLOWED: Final = {
    "kafka_bootstrap_servers": "host:port[,host:port...]",
    "redis_url": (
        "redis://[:password@]host:port/db, rediss://... or unix://path; with TONE_REDIS_CLUSTER, several "
        "comma-separated (seed nodes)"
    ),
    "scorer": (
        "rnn, transformer, vader, registry (the approved version, hot-reloaded), registry:VERSION, "
        "or the path of a model artifact"
    ),
    "routes": (
        "LANG=SCORER[,LANG=SCORER...]: LANG an ISO 639-1 code, und or *; SCORER default (TONE_SCORER), none, "
        "or a scorer spec (e.g. en=default,und=vader,*=none)"
    ),
    "shadow_scorer": (
        "empty (follow the registry's shadow version when the stream follows the registry), registry, none, "
        "or a scorer spec (rnn, vader, registry:VERSION, an artifact path)"
    ),
    "lang_candidates": "ISO 639-1 codes separated by spaces or commas (the languages the detector chooses among)",
    "registry_uri": (
        "a local directory or s3://bucket/prefix (the project's index), sagemaker://GROUP_PREFIX (SageMaker Model "
        "Registry, artifacts in TONE_SAGEMAKER_BUCKET) or mlflow://REGISTERED_MODEL (at TONE_MLFLOW_TRACKING_URI)"
    ),
    "sagemaker_role": "an IAM role ARN SageMaker training jobs run as",
    "transformer_model": "a Hugging Face hub id or local model directory (unset: the project's fine-tuned MiniLM)",
    "aws_endpoint_url": "an http(s) URL, or unset for real AWS",
    "mlflow_tracking_uri": "the http(s) URL of an MLflow tracking server",
}


def allowed_values(field: str) -> str:
    """A human description of what ``field`` accepts, for error messages and `tone config show`."""
    info: FieldInfo = Settings.model_fields[field]
    annotation = info.annotation
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = [a for a in typing.get_args(annotation) if a is not type(None)] if is_union else [annotation]
    literal_values = [v for a in args if typing.get_origin(a) is Literal for v in typing.get_args(a)]
    if literal_values:
        return "one of " + ", ".join(map(str, literal_values))
    if int in args or float in args:
        lo = next((f">= {m.ge}" for m in info.metadata if isinstance(m, Ge)), None)
        lo = lo or next((f"> {m.gt}" for m in info.metadata if isinstance(m, Gt)), None)
        hi = next((f"<= {m.le}" for m in info.metadata if isinstance(m, Le)), None)
        bounds = " ".join(p for p in (lo, hi) if p)
        return f"{'an integer' if int in args else 'a number'} {bounds}".strip()
    if field in _ALLOWED:
        return _ALLOWED[field]
    if SecretStr in args:
        return "a secret string"
    if Path in args:
        return "a file path (PEM)" if field.endswith("ca_file") else "a directory path"
    if bool in args:
        return "true or false"
    return "a non-empty string"


def _is_secret(field: str) -> bool:
    """A SecretStr setting (by its type, not its name: a token budget is not a secret); unknown names count as one."""
    info = Settings.model_fields.get(field)
    if info is None:
        return "password" in field or "token" in field
    return SecretStr in typing.get_args(info.annotation) or info.annotation is SecretStr


def _config_error(exc: ValidationError) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = err["loc"][0] if err["loc"] else ""
        field = next((n for n, f in Settings.model_fields.items() if loc in (n, f.validation_alias)), str(loc))
        name = env_name(field) if field in Settings.model_fields else str(loc)
        shown = "<secret>" if _is_secret(field) else repr(err.get("input"))
        reason = str(err["msg"]).removeprefix("Value error, ")
        allowed = allowed_values(field) if field in Settings.model_fields else "see `tone config show`"
        lines.append(f"{name}={shown} is invalid: {reason}. Allowed: {allowed}.")
    return ConfigError("bad configuration:\n  " + "\n  ".join(lines))


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (``overrides`` win), turning validation errors into a ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _config_error(exc) from None


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return load_settings()
