"""What the stream publishes after each micro-batch: Prometheus metrics, consumer-group offsets, a health record.

- **Metrics** (prometheus-client, served by the driver on ``TONE_METRICS_PORT``): batches, records by outcome, dead
  letters by reason, tweets by language (bounded labels) and those not scored, processing rate, batch duration,
  task time per stage, produce->Redis latency, lag per partition, the model version, refresh decisions, restarts,
  and the tone drift signal.
- **Lag in standard tools**: the offsets the store has counted are committed to a consumer group named
  ``TONE_KAFKA_GROUP_PREFIX`` + the query (``tone-stream.tone``; :class:`tone.kafka.clients.GroupOffsets`), so
  `kafka-consumer-groups --describe --group tone-stream.tone` and lag
  exporters show the stream's lag. Monitoring only: the checkpoint and the store stay the truth. With
  ``TONE_OUTPUT_GUARANTEE=exactly_once`` the tasks' transactions commit that group's offsets themselves (with the
  outputs they cover) and the monitor commits nothing: a commit of its own could move the group back under a newer
  transaction's.
- **Health** in Redis (``tone:stream:{query}``) for the dashboard, which reads Redis only.

Lag per partition is the partition's end offset minus the next offset the store has not counted (the store's own
bookkeeping, so it is exact across restarts).

Drift: over the last ``TONE_DRIFT_WINDOW_S`` the share of each label among scored tweets, against the label mix the
model was trained on (its manifest), their total variation distance, and how often VADER disagreed with the model on
the sampled tweets (``TONE_DRIFT_SAMPLE``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, Info, start_http_server
from prometheus_client import Counter as PromCounter

from tone.errors import ConfigError
from tone.kafka.readers import behind_message, offsets_behind
from tone.language import metric_language

if TYPE_CHECKING:
    from streaming.job import BatchReport, ToneStream
    from tone.aggregates.store import ToneStore
    from tone.kafka.clients import GroupOffsets
    from tone.kafka.readers import RangeReader

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)
BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STAGES = ("parse", "lang", "score", "redis", "kafka")
SHADOW_READ_S = 10.0  # the shadow evidence in health and metrics is read from the store at most this often
CONVERSATION_READ_S = 10.0  # so are the tags' shifts (a read of the 20 most active tags' last day of minutes)


class StreamMetrics:
    """The stream's Prometheus metrics, in a registry of their own (one per job; tests make several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Define every metric family."""
        r = self.registry = registry or CollectorRegistry()
        self.batches = PromCounter("tone_stream_batches", "Micro-batches processed.", registry=r)
        self.records = PromCounter("tone_stream_records", "Kafka records handled, by outcome.", ["outcome"], registry=r)
        self.dead_letters = PromCounter(
            "tone_stream_dead_letters", "Records sent to the dead-letter topic, by reason.", ["reason"], registry=r
        )
        self.languages = PromCounter(
            "tone_stream_tweets_by_language",
            "Valid tweets by language (the common languages by code, the rest as other).",
            ["lang"],
            registry=r,
        )
        self.unscored = PromCounter(
            "tone_stream_unscored_tweets", "Valid tweets no route scores (counted by language only).", registry=r
        )
        self.lang_ignored = PromCounter(
            "tone_stream_declared_lang_ignored",
            "Tweets whose declared lang is not a language tag (ignored; the language was detected).",
            registry=r,
        )
        self.rate = Gauge(
            "tone_stream_records_per_second", "Records handled per second over the last batch.", registry=r
        )
        self.batch_duration = Histogram(
            "tone_stream_batch_duration_seconds", "Wall time of a micro-batch.", buckets=BATCH_BUCKETS, registry=r
        )
        self.stage = PromCounter(
            "tone_stream_stage_seconds", "Task time per stage, summed over tasks.", ["stage"], registry=r
        )
        self.latency = Histogram(
            "tone_stream_latency_seconds",
            "Produce -> Redis latency of sampled records (Kafka timestamp to the store write).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "tone_stream_lag_records", "Records in Kafka not counted yet.", ["topic", "partition"], registry=r
        )
        self.last_batch = Gauge(
            "tone_stream_last_batch_timestamp_seconds", "When the last micro-batch finished (epoch).", registry=r
        )
        self.model = Info("tone_model", "The model version the stream scores with.", registry=r)
        self.refresh = PromCounter(
            "tone_model_refresh", "Model refresh decisions (applied or refused).", ["result"], registry=r
        )
        self.lost = PromCounter(
            "tone_stream_lost_offsets",
            "Offsets deleted (retention) before the stream read them, skipped with failOnDataLoss=false.",
            registry=r,
        )
        self.restarts = PromCounter("tone_stream_restarts", "Query restarts from the checkpoint.", registry=r)
        self.label_share = Gauge(
            "tone_drift_label_share", "Share of scored tweets per label over the drift window.", ["label"], registry=r
        )
        self.training_share = Gauge(
            "tone_drift_training_label_share",
            "Share of each label in the model's training data.",
            ["label"],
            registry=r,
        )
        self.drift_distance = Gauge(
            "tone_drift_distance",
            "Total variation distance between the window's and the training label mix.",
            registry=r,
        )
        self.disagreement = Gauge(
            "tone_drift_vader_disagreement_ratio",
            "Share of sampled tweets VADER labels differently from the model, over the drift window.",
            registry=r,
        )

        pair = ["live", "candidate"]
        self.shadow_tweets = Gauge(
            "tone_shadow_tweets", "Tweets scored by both the live model and the shadow candidate.", pair, registry=r
        )
        self.shadow_agreement = Gauge(
            "tone_shadow_agreement_ratio", "Share of shadowed tweets both models label alike.", pair, registry=r
        )
        self.shadow_flips = Gauge(
            "tone_shadow_flips", "Shadowed tweets by live label and candidate label.", [*pair, "live_label", "label"],
            registry=r,
        )  # fmt: skip
        self.shadow_polarity = Gauge(
            "tone_shadow_mean_abs_polarity_change", "Mean |polarity change| on shadowed tweets.", pair, registry=r
        )
        self.shadow_seconds = Gauge(
            "tone_shadow_seconds_per_tweet", "Scoring time per shadowed tweet, by model (live or candidate).",
            [*pair, "model"], registry=r,
        )  # fmt: skip
        self.shadow_dropped = PromCounter(
            "tone_shadow_dropped", "Shadow candidates dropped (failed to load or raised).", registry=r
        )
        self.tweets_by_label = PromCounter(
            "tone_stream_tweets_by_label",
            "Scored tweets counted, by label (the stream's tone over time).",
            ["label"],
            registry=r,
        )
        self.shift_active = Gauge(
            "tone_shift_active",
            '1 while a tone shift was detected in the last hour of event time, by tag (tag="*": the whole stream; '
            "the 20 most active tags) and direction (negative: the negative share rose).",
            ["tag", "direction"],
            registry=r,
        )
        self.late = Gauge(
            "tone_timeline_late_tweets",
            "Tweets counted for a minute already closed (older than TONE_TIMELINE_LATENESS_S behind the stream).",
            registry=r,
        )
        self.event_time = Gauge(
            "tone_timeline_event_time_seconds", "The stream's event time: its latest counted tweet (epoch).", registry=r
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve /metrics over HTTP from a daemon thread."""
        try:
            start_http_server(port, addr=addr, registry=self.registry)
        except OSError as exc:
            msg = f"cannot serve metrics on {addr}:{port} ({exc}): set TONE_METRICS_PORT to a free port, or 0 for none"
            raise ConfigError(msg) from None


@dataclass
class _Window:
    at: float
    labels: Counter[str]
    sampled: int
    disagreed: int


class StreamMonitor:
    """Publishes after each batch (see the module docstring).

    Failures are logged, never raised: monitoring must not stop the stream.
    """

    def __init__(
        self,
        metrics: StreamMetrics,
        store: ToneStore,
        reader: RangeReader,
        group: GroupOffsets | None,
        *,
        training_mix: Mapping[str, int] | None,
        window_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Wire the sinks of the monitoring data."""
        self.metrics, self.store, self.reader, self.group = metrics, store, reader, group
        self.window_s, self.clock = window_s, clock
        self.windows: deque[_Window] = deque()
        self.reasons: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()  # bounded: language codes
        self._events_seen = 0
        self._restarts_seen = 0
        self._last_finished: float | None = None
        self._prune_cursors: dict[str, int] = {}
        self._shadow_events_seen = 0
        self._shadow_version: str | None = None  # the version the candidate's tasks reported
        self._evidence: list[dict[str, Any]] | None = None  # the last read of the store's shadow evidence, and when
        self._evidence_at = 0.0
        self._shadowed = False  # a candidate was shadowed in this run: its evidence is published from then on
        self._conversation_read: dict[str, Any] | None = None
        self._conversation_at = 0.0
        total = sum((training_mix or {}).values())
        self.training = {k: v / total for k, v in (training_mix or {}).items()} if total else {}
        for label, share in self.training.items():
            metrics.training_share.labels(label).set(share)

    def after_batch(self, job: ToneStream, report: BatchReport) -> None:
        """Update metrics, commit group offsets and write the health record for one finished batch."""
        try:
            self._publish(job, report)
        except Exception:  # noqa: BLE001 - monitoring must never fail the stream
            log.exception("could not publish the stream's metrics/health for batch %d", report.batch_id)

    def _publish(self, job: ToneStream, report: BatchReport) -> None:
        self._prune()
        m = self.metrics
        m.batches.inc()
        m.records.labels("valid").inc(report.valid)
        m.records.labels("invalid").inc(report.invalid)
        m.records.labels("already_counted").inc(report.already)
        m.records.labels("duplicate").inc(report.duplicates)
        m.records.labels("delete").inc(report.deletes)
        m.records.labels("delete_unmatched").inc(report.deletes_unmatched)
        m.records.labels("forget").inc(report.forgets)
        m.records.labels("forgotten").inc(report.forgotten)
        m.lost.inc(report.lost)
        for reason, n in report.reasons.items():
            m.dead_letters.labels(reason).inc(n)
        self.reasons.update(report.reasons)
        for lang, n in report.languages.items():
            m.languages.labels(metric_language(lang)).inc(n)
        self.languages.update(report.languages)
        m.unscored.inc(report.unscored)
        for label, n in report.labels.items():
            m.tweets_by_label.labels(label).inc(n)
        m.lang_ignored.inc(report.lang_ignored)
        elapsed = report.finished - (self._last_finished or report.started)
        self._last_finished = report.finished
        m.rate.set(report.records / elapsed if elapsed > 0 else 0.0)
        m.batch_duration.observe(report.finished - report.started)
        for stage in STAGES:
            m.stage.labels(stage).inc(getattr(report, f"{stage}_s"))
        for lag in report.lags:
            m.latency.observe(lag)
        m.last_batch.set(report.finished)
        version = job.config.scorer
        if report.model_versions:
            version = sorted(report.model_versions)[-1]
            m.model.info({"version": version})
        if job.refresher is not None:
            for event in job.refresher.events[self._events_seen :]:
                if event.action in ("swap", "refuse"):
                    m.refresh.labels("applied" if event.action == "swap" else "refused").inc()
            self._events_seen = len(job.refresher.events)
        if report.refused:
            m.refresh.labels("refused_on_worker").inc(len(report.refused))
        if job.restarts > self._restarts_seen:
            m.restarts.inc(job.restarts - self._restarts_seen)
            self._restarts_seen = job.restarts

        drift = self._drift(report)
        lags = self._lags(job)
        shadow = self._shadow(job, report, version)
        conversation = self._conversation(job)
        self.store.write_health(
            job.config.query,
            {
                "updated_at": f"{self.clock():.3f}",
                "last_batch_at": f"{report.finished:.3f}",
                "batches": str(job.batches),
                "records": str(job.totals["records"]),
                "invalid": str(job.totals["invalid"]),
                "rate": f"{m.rate._value.get():.1f}",  # noqa: SLF001 - the gauge's current value
                "lag": json.dumps({str(p): n for p, n in lags.items()}),
                "dead_letters": json.dumps(dict(self.reasons)),
                "languages": json.dumps(dict(self.languages.most_common())),
                "unscored": str(job.totals["unscored"]),
                "duplicates": str(job.totals["duplicates"]),
                "deletes": str(job.totals["deletes"]),
                "deletes_unmatched": str(job.totals["deletes_unmatched"]),
                "forgets": str(job.totals["forgets"]),
                "forgotten": str(job.totals["forgotten"]),
                "model_version": version,
                "model_versions": json.dumps(sorted(report.model_versions)),
                "refused_on_workers": json.dumps(sorted(report.refused)),
                "restarts": str(job.restarts),
                "drift": json.dumps(drift),
                "shadow": json.dumps(shadow),
                "conversation": json.dumps(conversation),
            },
        )

    def _shadow(self, job: ToneStream, report: BatchReport, live: str) -> dict[str, Any]:
        """The shadow candidate and its evidence against the live model (counted in the store, exactly once)."""
        m = self.metrics
        for event in job.shadow.events[self._shadow_events_seen :]:
            if event.action in ("drop", "refuse"):
                m.shadow_dropped.inc()
        self._shadow_events_seen = len(job.shadow.events)
        if report.shadow_models:
            self._shadow_version = sorted(report.shadow_models)[-1]
        out: dict[str, Any] = {
            "candidate": job.config.shadow or None,  # the spec the stream shadows now
            "candidate_version": self._shadow_version if job.config.shadow else None,
            "live_version": live,
            "dropped": job.shadow_dropped or None,
        }
        if not job.config.shadow and not self._shadowed:
            return out  # never shadowed: nothing to read
        if self._evidence is None or self.clock() - self._evidence_at >= SHADOW_READ_S:
            # A read per batch would be one per trigger; on a Redis Cluster it is a read per slot with evidence.
            self._evidence, self._evidence_at = self.store.shadow_evidence(job.config.query), self.clock()
        evidence = self._evidence
        self._shadowed = True
        for e in evidence:
            pair = (e["live"], e["candidate"])
            m.shadow_tweets.labels(*pair).set(e["n"])
            if e["agreement"] is not None:
                m.shadow_agreement.labels(*pair).set(e["agreement"])
                m.shadow_polarity.labels(*pair).set(e["mean_abs_polarity_change"])
                m.shadow_seconds.labels(*pair, "live").set(e["live_ms_per_tweet"] / 1000)
                m.shadow_seconds.labels(*pair, "candidate").set(e["shadow_ms_per_tweet"] / 1000)
            for live_label, row in e["flips"].items():
                for label, n in row.items():
                    m.shadow_flips.labels(*pair, live_label, label).set(n)
        out["pairs"] = [{k: v for k, v in e.items() if k != "flipped"} for e in evidence]
        return out

    def _conversation(self, job: ToneStream) -> dict[str, Any]:
        """The stream's event time, its late tweets and the active shifts (at most every CONVERSATION_READ_S)."""
        if not job.settings.tags:
            return {}
        if self._conversation_read is not None and self.clock() - self._conversation_at < CONVERSATION_READ_S:
            return self._conversation_read
        from tone.aggregates.timeline import active_shifts
        from tone.tags import STREAM

        m = self.metrics
        stream = self.store.tag(STREAM)
        shifts = active_shifts(self.store, job.settings)
        m.shift_active.clear()
        for shift in shifts:
            m.shift_active.labels(shift["tag"] or STREAM, shift["direction"]).set(1)
        if stream is not None:
            m.late.set(stream["late"])
            m.event_time.set(stream["last_seen"] or 0)
        self._conversation_read = {
            "event_time": None if stream is None else stream["last_seen"],
            "late": 0 if stream is None else stream["late"],
            "shifts": shifts,
        }
        self._conversation_at = self.clock()
        return self._conversation_read

    def _prune(self) -> None:
        removed = self.store.prune_top(self._prune_cursors)
        if removed:
            log.info("removed %d expired users from the top-N sets", removed)

    def _drift(self, report: BatchReport) -> dict[str, Any]:
        now = self.clock()
        self.windows.append(_Window(now, report.labels, report.sampled, report.disagreed))
        while self.windows and self.windows[0].at < now - self.window_s:
            self.windows.popleft()
        labels: Counter[str] = Counter()
        sampled = disagreed = 0
        for w in self.windows:
            labels.update(w.labels)
            sampled += w.sampled
            disagreed += w.disagreed
        total = sum(labels.values())
        share = {k: v / total for k, v in labels.items()} if total else {}
        m = self.metrics
        for label in set(share) | set(self.training):
            m.label_share.labels(label).set(share.get(label, 0.0))
        distance = None
        if share and self.training:
            distance = 0.5 * sum(
                abs(share.get(k, 0.0) - self.training.get(k, 0.0)) for k in set(share) | set(self.training)
            )
            m.drift_distance.set(distance)
        ratio = disagreed / sampled if sampled else None
        if ratio is not None:
            m.disagreement.set(ratio)
        return {
            "window_s": self.window_s,
            "label_share": share,
            "training_share": self.training,
            "distance": distance,
            "vader_disagreement": ratio,
            "sampled": sampled,
        }

    def _lags(self, job: ToneStream) -> dict[int, int]:
        topic = job.settings.kafka_topic_tweets
        parts = self.reader.partitions(topic)
        ends = self.reader.end_offsets(topic, parts)
        begins = self.reader.beginning_offsets(topic, parts)
        lags, next_offsets = {}, {}
        markers = {p: self.store.last_offset(job.config.query, topic, p) for p in parts}
        if behind := offsets_behind(ends, markers):
            # The topic was recreated under the running query: the job stops it after this batch (see ToneStream).
            detail = ", ".join(
                f"partition {p}: counted up to offset {m}, topic ends at {e}" for p, (m, e) in behind.items()
            )
            job.behind = behind_message(topic, detail)
            log.error("%s", job.behind)
        for p in parts:
            last = markers[p]
            nxt = begins[p] if last is None else last + 1
            lags[p] = max(0, ends[p] - nxt)
            self.metrics.lag.labels(topic, str(p)).set(lags[p])
            if last is not None:
                next_offsets[p] = last + 1
        if self.group is not None:
            self.group.commit(topic, next_offsets)
        return lags

    def close(self) -> None:
        """Release the Kafka clients."""
        self.reader.close()
        if self.group is not None:
            self.group.close()


def open_monitor(job: ToneStream, *, serve_metrics: bool = True) -> StreamMonitor:
    """A monitor for ``job`` from its settings: metrics served on ``metrics_port`` (unless 0 or not asked)."""
    from tone.aggregates.factory import open_store
    from tone.kafka.clients import GroupOffsets
    from tone.kafka.config import KafkaConnection
    from tone.kafka.readers import open_reader
    from tone.scoring.loader import training_mix

    s = job.settings
    conn = KafkaConnection.from_settings(s)
    metrics = StreamMetrics()
    if serve_metrics and s.metrics_port:
        metrics.serve(s.metrics_port, s.metrics_host)
    store = open_store(s)
    if warning := store.eviction_warning():
        log.warning("%s", warning)
    return StreamMonitor(
        metrics,
        store,
        open_reader(conn),
        None if s.output_guarantee == "exactly_once" else GroupOffsets(conn, s.kafka_group_prefix + job.config.query),
        training_mix=training_mix(job.config.scorer, s),
        window_s=s.drift_window_s,
    )
