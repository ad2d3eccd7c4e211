"""The stream's per-record logic, free of Spark: records -> events | dead letters -> scored -> sinks.

One task's work (see :func:`run_task`), in an order that keeps every guarantee:

1. parse and validate each record (``tone.events.parse_event``); a bad one becomes a :class:`DeadLetter` with a
   stable reason, the original bytes and its ``topic:partition:offset``;
2. give each valid tweet its language (declared, else detected: :mod:`tone.language`) and route it: the tweets of
   each route's scorer are scored in one call (bigger sets pad less); a tweet no route covers is counted unscored;
3. build each scored tweet; anything that raises while handling one record dead-letters that record with reason
   ``internal_error`` (the exception in ``detail``) and the rest of the batch goes on. A scorer that raises on a
   set of texts is asked again on halves of it until the texts it fails on stand alone (they are dead-lettered);
   one that fails on a short canary text too is broken, not the records, and the batch fails;
4. send the dead letters and the scored tweets, and **flush**: a record the broker did not acknowledge fails the
   task before anything is counted (the task's retry, or the query's restart in ``local[*]``, writes it again);
5. count each range's records in the store, exactly once per record (:func:`tone.aggregates.store.count_records`:
   only offsets above the query's marker count, in bounded atomic steps).

Records at or below the marker were counted (and so sent) by an earlier attempt or run: they are dropped right after
parsing, so a retried task, an overlapping range or a lost checkpoint neither scores nor sends them again.

A failure of the whole batch (the scorer, the broker, the store) raises, so the batch is retried, never dropped.
The sinks are protocols (:class:`~tone.kafka.clients.Producer`, :class:`~tone.aggregates.store.ToneStore`): the
Spark job passes Kafka and Redis, unit tests in-memory ones.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Final

from tone.aggregates.deltas import Scored, hour_bucket
from tone.aggregates.shadow import Shadowed
from tone.aggregates.store import DEFAULT_STEP_TWEETS, count_records
from tone.events import (
    FUTURE_TIMESTAMP,
    INTERNAL_ERROR,
    DeadLetter,
    DeleteEvent,
    ForgetEvent,
    Invalid,
    ScoredTweet,
    TweetEvent,
    parse_record,
)
from tone.kafka.transactions import AT_LEAST_ONCE, EXACTLY_ONCE, Output, RangeOutputs
from tone.language import DECLARED, DEFAULT_SCORER, NO_ROUTE, UND, WILDCARD, Precedence, Routes, resolve
from tone.tags import STREAM
from tone.tags import of_tweet as tweet_tags

if TYPE_CHECKING:
    from tone.aggregates.store import ToneStore
    from tone.kafka.clients import Producer
    from tone.kafka.readers import RecordChunk
    from tone.kafka.transactions import Outputs
    from tone.langid import LanguageDetector
    from tone.scoring.base import Scorer, ToneResult
    from tone.settings import Settings

LAG_SAMPLE: Final = 2000  # per-record produce->store lags returned per range (evenly spaced), for percentiles
DETAIL_CHARS: Final = 500


@dataclass(frozen=True)
class TaskConfig:
    """What the per-record logic needs from the settings (plain data)."""

    query: str
    dlq_topic: str
    scored_topic: str
    max_text_chars: int
    max_message_bytes: int
    half_life_s: float
    recent_k: int
    drift_sample: float = 0.0  # share of valid tweets VADER scores too, for the disagreement rate
    step_tweets: int = DEFAULT_STEP_TWEETS  # tweets per atomic store step
    max_future_s: float = 300.0  # created_at may be at most this far after the record's Kafka timestamp
    output_guarantee: str = AT_LEAST_ONCE  # exactly_once: each range's outputs in one transaction (Outputs)
    # Languages -> scorer specs; ``default`` is the job's (hot-reloaded) scorer. Unit tests score everything.
    routes: Routes = Routes(((WILDCARD, DEFAULT_SCORER),))
    lang_precedence: Precedence = DECLARED
    dead_letter_max_bytes: int = 524_288  # a dead letter (key, value, headers) is cut to this (DeadLetter.fitted)
    shadow_sample: float = 1.0  # share of the live-scored tweets a shadow candidate scores too (by record)

    @classmethod
    def from_settings(cls, settings: Settings, query: str) -> TaskConfig:
        """The configured topics, limits, routes and aggregation parameters."""
        return cls(
            query,
            settings.kafka_topic_dlq,
            settings.kafka_topic_scored,
            settings.max_text_chars,
            settings.max_message_bytes,
            settings.ewma_half_life_s,
            settings.recent_tweets,
            drift_sample=settings.drift_sample,
            step_tweets=settings.redis_step_tweets,
            max_future_s=settings.max_future_s,
            output_guarantee=settings.output_guarantee,
            routes=Routes.parse(settings.routes),
            lang_precedence=settings.lang_precedence,
            dead_letter_max_bytes=settings.dead_letter_max_bytes,
            shadow_sample=settings.shadow_sample,
        )


@dataclass
class RangeStats:
    """What one task did with one Kafka range; one row of the task's output (see STATS_SCHEMA)."""

    topic: str = ""
    partition: int = -1
    start_offset: int = -1
    end_offset: int = -1
    records: int = 0
    valid: int = 0
    invalid: int = 0
    applied: bool = False
    counted: int = 0  # valid records counted in the store by this attempt
    already: int = 0  # records at or below the marker: counted before (a retried task, an overlap, a new checkpoint)
    duplicates: int = 0  # valid tweets whose id was counted within the dedupe horizon (or earlier in the task)
    deletes: int = 0  # deletions that took a tweet's contribution back out
    deletes_unmatched: int = 0  # deletions of a tweet not kept (older than the horizon, or never counted)
    forgets: int = 0  # erasures carried out
    forgotten: int = 0  # tweets left out: their user was erased after they were written
    lost: int = 0  # offsets deleted (retention) before this range read them, with failOnDataLoss=false
    steps: int = 0  # atomic store steps
    sent: int = 0  # outputs written in this attempt's transaction (exactly_once; records above the group's offset)
    refused: str = ""  # model specs this task's worker failed to load, comma-separated (it scored with its old one)
    unscored: int = 0  # valid records no route scored (counted by language only)
    langs: str = "{}"  # valid records by language (JSON)
    lang_ignored: int = 0  # valid records whose declared lang is not a language tag (detected instead)
    parse_s: float = 0.0
    lang_s: float = 0.0
    score_s: float = 0.0
    redis_s: float = 0.0
    kafka_s: float = 0.0
    model_version: str = ""  # the models that scored this range's tweets, comma-separated
    max_lag_s: float = 0.0
    lags: str = "[]"
    reasons: str = "{}"  # dead letters by reason (JSON)
    labels: str = "{}"  # scored tweets by label (JSON), for the drift signal
    sampled: int = 0  # tweets VADER also scored
    disagreed: int = 0  # ... and labelled differently from the model
    shadow_model: str = ""  # the shadow candidate that scored a sample of this range's tweets
    shadowed: int = 0  # tweets it scored (counted as evidence with the range)
    shadow_error: str = ""  # why the candidate was dropped in this task (it failed to load or raised)
    shadow_s: float = 0.0  # its scoring time


# Spark's DDL for the rows above, derived from the dataclass so the two cannot drift apart. Partition is the only
# 32-bit integer (Spark's Kafka schema has it as int); the other integers are offsets and counts.
_DDL = {str: "string", bool: "boolean", float: "double", int: "long"}
STATS_SCHEMA: Final = ", ".join(
    f"{f.name} {'int' if f.name == 'partition' else _DDL[type(f.default)]}" for f in fields(RangeStats)
)


@dataclass
class _Valid:
    event: TweetEvent
    key: bytes | None
    value: bytes | None
    offset: int
    stamp_s: float  # Kafka timestamp
    lang: str = UND
    lang_source: str = UND
    result: ToneResult | None = None  # None: no route scores its language
    version: str = ""
    error: BaseException | None = None  # its scorer raised on it alone (see _isolated): dead-lettered
    live_s: float = 0.0  # its share of its scorer's time
    shadow: Shadowed | None = None  # the shadow candidate's score
    # Counted in its user's shard by an attempt killed before its tags' shards: counted again only where it is not
    # yet (count_records' per-shard markers), and never taken for a duplicate of itself.
    partial: bool = False


@dataclass
class ParsedRange:
    """One Kafka partition's offset range after parsing: valid events and dead letters."""

    stats: RangeStats
    valid: list[_Valid] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    dead_offsets: list[int] = field(default_factory=list)
    lost: list[tuple[int, int]] = field(default_factory=list)  # offset ranges deleted before they were read
    scored: list[Scored] = field(default_factory=list)
    wire: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value) for the scored topic
    # Deletions and erasures, by offset (with the record's Kafka timestamp, epoch seconds)
    controls: list[tuple[int, DeleteEvent | ForgetEvent, float]] = field(default_factory=list)
    deletions: list[tuple[int, Scored]] = field(default_factory=list)  # the deletions to count, with contributions


def dead_letter_of(error: BaseException, key: bytes | None, value: bytes | None, source: str) -> DeadLetter:
    """The dead letter for a record whose handling raised ``error``."""
    detail = f"{type(error).__name__}: {error}"[:DETAIL_CHARS]
    return DeadLetter(key, value, INTERNAL_ERROR, detail, source)


def parse_ranges(chunks: Iterable[RecordChunk], config: TaskConfig) -> list[ParsedRange]:
    """Parse one source's chunks into one ParsedRange per partition (a source normally holds one partition)."""
    by_partition: dict[tuple[str, int], ParsedRange] = {}
    for chunk in chunks:
        if not chunk.offsets and not chunk.lost and chunk.end < 0:
            continue
        part = by_partition.get((chunk.topic, chunk.partition))
        if part is None:
            # A range whose offsets were all deleted yields a chunk with no record, only the lost count.
            stats = RangeStats(chunk.topic, chunk.partition)
            part = by_partition[(chunk.topic, chunk.partition)] = ParsedRange(stats)
        stats = part.stats
        part.lost += chunk.lost
        if chunk.end >= 0:  # the reader's position: past any trailing transaction markers and aborted records
            stats.end_offset = max(stats.end_offset, chunk.end - 1)
        if not chunk.offsets:
            continue
        if stats.start_offset < 0:
            stats.start_offset = chunk.offsets[0]
        stats.end_offset = max(stats.end_offset, chunk.offsets[-1])  # a partition's offsets only grow
        stats.records += len(chunk.offsets)
        for key, value, offset, ts_ms in zip(chunk.keys, chunk.values, chunk.offsets, chunk.stamps_ms, strict=True):
            source = f"{chunk.topic}:{chunk.partition}:{offset}"
            try:
                result = parse_record(
                    value, max_text_chars=config.max_text_chars, max_message_bytes=config.max_message_bytes
                )
            except Exception as exc:  # noqa: BLE001 - parse_event never raises by contract; if it does, isolate it
                part.dead.append(dead_letter_of(exc, key, value, source))
                part.dead_offsets.append(offset)
                continue
            if isinstance(result, Invalid):
                part.dead.append(DeadLetter(key, value, result.reason, result.detail, source))
                part.dead_offsets.append(offset)
            elif isinstance(result, DeleteEvent | ForgetEvent):
                part.controls.append((offset, result, ts_ms / 1000))
            elif ts_ms > 0 and (ahead := result.created_at.timestamp() - ts_ms / 1000) > config.max_future_s:
                detail = (
                    f"created_at {result.created_at.isoformat()} is {ahead:.0f} s after the record's Kafka timestamp "
                    f"(at most {config.max_future_s:.0f} s, TONE_MAX_FUTURE_S)"
                )
                part.dead.append(DeadLetter(key, value, FUTURE_TIMESTAMP, detail, source))
                part.dead_offsets.append(offset)
            else:
                part.valid.append(_Valid(result, key, value, offset, ts_ms / 1000))
    return list(by_partition.values())


def _drop_counted(part: ParsedRange, last: int) -> None:
    """Leave out the records at or below the marker ``last``: counted, and so sent, by an earlier attempt or run."""
    before = len(part.valid) + len(part.dead) + len(part.controls)
    part.valid = [item for item in part.valid if item.offset > last]
    kept = [(o, letter) for o, letter in zip(part.dead_offsets, part.dead, strict=True) if o > last]
    part.dead_offsets = [o for o, _ in kept]
    part.dead = [letter for _, letter in kept]
    part.controls = [c for c in part.controls if c[0] > last]
    part.stats.already = before - len(part.valid) - len(part.dead) - len(part.controls)


def _languages(parts: list[ParsedRange], config: TaskConfig, detector: Callable[[], LanguageDetector] | None) -> None:
    """Each valid tweet's language: declared, else detected (the detector is loaded only if a tweet needs it)."""
    detect: Callable[[str], str] | None = None
    if detector is not None:
        build = detector
        loaded: list[LanguageDetector] = []

        def detect(text: str) -> str:
            if not loaded:
                loaded.append(build())
            return loaded[0].detect(text)

    precedence = config.lang_precedence
    for part in parts:
        counts: Counter[str] = Counter()
        for item in part.valid:
            found = resolve(item.event.lang, item.event.text, precedence, detect)
            item.lang, item.lang_source = found.code, found.source
            part.stats.lang_ignored += found.ignored
            counts[found.code] += 1
        part.stats.langs = json.dumps(counts)


def _score(parts: list[ParsedRange], config: TaskConfig, scorer: Callable[[str], Scorer]) -> Scorer | None:
    """Score each routed tweet, one call per route's scorer; returns the default route's scorer if it was used."""
    by_spec: dict[str, list[_Valid]] = {}
    for part in parts:
        for item in part.valid:
            spec = config.routes.spec_for(item.lang)
            if spec is not None:
                by_spec.setdefault(spec, []).append(item)
    default = None
    for spec, items in by_spec.items():
        model = scorer(spec)
        t0 = time.perf_counter()
        results = _isolated(model, [item.event.text for item in items])
        share = (time.perf_counter() - t0) / len(items)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                item.error = result
            else:
                item.result, item.version, item.live_s = result, model.version, share
        if spec == DEFAULT_SCORER:
            default = model
    return default


def _in_sample(topic: str, partition: int, offset: int, share: float) -> bool:
    """Whether a record is in a ``share`` sample: a hash of where it is, so every attempt picks the same records."""
    return share >= 1.0 or zlib.crc32(f"{topic}:{partition}:{offset}".encode()) < share * 2**32


def _shadow(parts: list[ParsedRange], config: TaskConfig, shadow: Callable[[], Scorer]) -> None:
    """Score a sample of the live-scored tweets with the shadow candidate too (see tone.aggregates.shadow).

    Only tweets in a language the candidate reads. A candidate that fails to load or raises is dropped for this task
    with the reason in the first range's ``shadow_error`` (the driver stops shadowing it); live scoring goes on.
    """
    first = parts[0].stats
    picked = [
        item
        for part in parts
        for item in part.valid
        if item.result is not None and _in_sample(part.stats.topic, part.stats.partition, item.offset,
                                                  config.shadow_sample)
    ]  # fmt: skip
    if not picked:
        return
    t0 = time.perf_counter()
    try:
        model = shadow()
        reads = model.languages
        picked = [item for item in picked if reads is None or item.lang in reads]
        results = list(model.score([item.event.text for item in picked])) if picked else []
    except Exception as exc:  # noqa: BLE001 - a candidate never stops live scoring
        first.shadow_error = f"{type(exc).__name__}: {exc}"[:DETAIL_CHARS]
        return
    first.shadow_s = time.perf_counter() - t0
    first.shadow_model = model.version
    if not picked:
        return
    share = first.shadow_s / len(picked)
    for item, result in zip(picked, results, strict=True):
        item.shadow = Shadowed(model.version, result.label, result.polarity, item.live_s, share)


CANARY: Final = "ok"  # a text any working model scores: the check that a failure is the records', not the model's


def _isolated(model: Scorer, texts: list[str]) -> list[ToneResult | BaseException]:
    """``model.score(texts)``; when it raises, the texts it raises on alone get their exception, the rest scores.

    Halves are scored until each failing text stands alone (about k log n calls for k bad texts of n). When the
    model fails on the canary too, the model is what is broken: the first error is raised and the batch fails.
    """
    try:
        return list(model.score(texts))
    except Exception as first:
        try:
            model.score([CANARY])
        except Exception:  # noqa: BLE001 - broken model: the batch fails with its first error
            raise first from None

        def bisect(chunk: list[str]) -> list[ToneResult | BaseException]:
            try:
                return list(model.score(chunk))
            except Exception as exc:  # noqa: BLE001 - per-record isolation
                if len(chunk) == 1:
                    return [exc]
                mid = len(chunk) // 2
                return bisect(chunk[:mid]) + bisect(chunk[mid:])

        if len(texts) == 1:
            return [first]
        mid = len(texts) // 2
        return bisect(texts[:mid]) + bisect(texts[mid:])


def _prepare(part: ParsedRange) -> None:
    """Build each valid record's counted and wire forms (a record whose handling raises is dead-lettered)."""
    kept: list[_Valid] = []
    for item in part.valid:
        e, res, version = item.event, item.result, item.version
        try:
            if item.error is not None:
                raise item.error
            created = e.created_at.timestamp()
            hour_bucket(created)  # the aggregation needs it: fail here, for this record only
            tags = tweet_tags(e.tags, e.text)
            if res is None:
                scored = Scored(e.user_id, e.id, created, "", {}, 0.0, e.text, "", item.lang, scored=False, tags=tags)
                out = ScoredTweet(e.id, e.user_id, e.created_at, None, {}, None, None, item.lang, item.lang_source,
                                  NO_ROUTE, tags=tags)  # fmt: skip
            else:
                sh = item.shadow
                scored = Scored(e.user_id, e.id, created, res.label, res.probs, res.polarity, e.text, version,
                                item.lang, shadow=sh, tags=tags)  # fmt: skip
                wire_shadow = None if sh is None else {"model": sh.model, "label": sh.label, "polarity": sh.polarity}
                out = ScoredTweet(e.id, e.user_id, e.created_at, res.label, res.probs, res.polarity, version, item.lang,
                                  item.lang_source, shadow=wire_shadow, tags=tags)  # fmt: skip
            wire = out.to_json()
        except Exception as exc:  # noqa: BLE001 - per-record isolation: any error dead-letters this record only
            source = f"{part.stats.topic}:{part.stats.partition}:{item.offset}"
            part.dead.append(dead_letter_of(exc, item.key, item.value, source))
            part.dead_offsets.append(item.offset)
            continue
        kept.append(item)
        part.scored.append(scored)
        part.wire.append((e.user_id.encode(), wire))
    part.valid = kept


def _compare(parts: list[ParsedRange], every: int, model: Scorer, reference: Scorer) -> None:
    """Score every ``every``-th tweet ``model`` scored (by offset) with the reference too, and count disagreements.

    Only tweets in a language the reference reads are compared.
    """
    reads = reference.languages
    picked = [
        (part, item, scored)
        for part in parts
        for item, scored in zip(part.valid, part.scored, strict=True)
        if item.offset % every == 0
        and item.result is not None
        and item.version == model.version
        and (reads is None or item.lang in reads)
    ]
    if not picked:
        return
    theirs = reference.predict([item.event.text for _, item, _ in picked])
    for (part, _, scored), label in zip(picked, theirs, strict=True):
        part.stats.sampled += 1
        part.stats.disagreed += int(scored.label != label)


def _skip_counted(
    parts: list[ParsedRange], config: TaskConfig, target: ToneStore, known: Mapping[tuple[str, int], int | None]
) -> dict[int, int | None]:
    """Each range's marker (by ``id`` of the range; ``known`` ones are not read again); drop the records at or below."""
    markers = {}
    for part in parts:
        s = part.stats
        key = (s.topic, s.partition)
        last = known[key] if key in known else target.last_offset(config.query, s.topic, s.partition)
        markers[id(part)] = last
        if last is not None and last >= s.start_offset:
            _drop_counted(part, last)
        # Deleted offsets at or below the marker were read and counted before (by an attempt that got further
        # than its checkpoint): not lost.
        floor = -1 if last is None else last
        s.lost = sum(max(0, end - max(start, floor + 1)) for start, end in part.lost)
    return markers


def _skip_counted_in_shards(parts: list[ParsedRange], config: TaskConfig, target: ToneStore) -> None:
    """In a sharded store, also leave out the tweets their own shard counted past the partition's marker.

    An attempt killed between two shards' steps leaves the partition's marker behind the shards it finished; its
    retry must take those records for what they are, counted (``already``), and never for duplicates of themselves.
    """
    if not target.sharded or not target.config.dedupe_horizon_s:
        return
    tags = target.config.tags
    for part in parts:
        if not part.valid and not part.controls:
            continue
        s = part.stats
        shard_of = {item.offset: target.shard_of(item.event.user_id) for item in part.valid}
        # A tweet's tags (and the stream) live in their own shards: it is counted whole once every one of them is.
        others = {
            item.offset: {target.shard_of(t) for t in (STREAM, *tweet_tags(item.event.tags, item.event.text))}
            for item in part.valid
            if tags
        }
        shards = sorted(set(shard_of.values()).union(*others.values()))
        floors = dict(zip(shards, target.shard_offsets(config.query, s.topic, s.partition, shards), strict=True))
        kept = []
        for item in part.valid:
            home = floors[shard_of[item.offset]]
            if home is None or item.offset > home:
                kept.append(item)
            elif any(f is None or item.offset > f for f in (floors[x] for x in others.get(item.offset, ()))):
                item.partial = True
                kept.append(item)
        s.already += len(part.valid) - len(kept)
        part.valid = kept
        user_shards = {c[1].user_id: target.shard_of(c[1].user_id) for c in part.controls}
        extra = sorted(set(user_shards.values()) - set(shards))
        floors |= dict(zip(extra, target.shard_offsets(config.query, s.topic, s.partition, extra), strict=True))
        controls = [c for c in part.controls if c[0] > (floors[user_shards[c[1].user_id]] or -1)]
        s.already += len(part.controls) - len(controls)
        part.controls = controls


def _forget_and_keep_out(parts: list[ParsedRange], target: ToneStore) -> None:
    """Carry out the task's erasures, then leave out every tweet (and deletion) of a user erased at or after it.

    An erasure (``{"forget": ...}``) is done before the range is counted, at the record's Kafka time: the user's
    older tweets in this range and later ones are kept out by the tombstone, newer ones count afresh. Redone by a
    retry (it is idempotent) until the marker passes it. ``tone forget`` and the API's DELETE leave the same
    tombstone.
    """
    for part in parts:
        for _, event, at in part.controls:
            if isinstance(event, ForgetEvent):
                target.forget(event.user_id, at)
                part.stats.forgets += 1
    users = sorted({item.event.user_id for part in parts for item in part.valid})
    users += sorted({c[1].user_id for part in parts for c in part.controls if isinstance(c[1], DeleteEvent)})
    gone = target.forgotten(list(dict.fromkeys(users))) if users else {}
    if not gone:
        return
    for part in parts:
        kept = [item for item in part.valid if item.event.created_at.timestamp() > gone.get(item.event.user_id, -1e18)]
        part.stats.forgotten += len(part.valid) - len(kept)
        part.valid = kept
        part.controls = [c for c in part.controls if isinstance(c[1], ForgetEvent) or c[1].user_id not in gone]


def _deletions(parts: list[ParsedRange], target: ToneStore) -> None:
    """Each deletion with the contribution its tweet made, to be counted (subtracted) at its offset.

    A deletion whose tweet is not kept (older than the horizon, or never counted) changes no count; its id is
    recorded all the same, so the tweet arriving late within the horizon is a duplicate and stays out. A tweet
    deleted within its own task (before or after the deletion's offset) is never counted nor written: the result
    of counting it and taking it back out, without the round trip.
    """
    wanted: dict[str, list[str]] = {}
    for part in parts:
        for _, event, _ in part.controls:
            if isinstance(event, DeleteEvent):
                wanted.setdefault(event.user_id, []).append(event.id)
    if not wanted:
        return
    kept = target.kept_contributions(wanted)
    in_task = {(item.event.user_id, item.event.id) for part in parts for item in part.valid}
    taken: set[tuple[str, str]] = set()
    for part in parts:
        for offset, event, _ in part.controls:
            if not isinstance(event, DeleteEvent):
                continue
            key = (event.user_id, event.id)
            contribution = kept.get(key) if key not in taken else None
            if key in in_task and key not in taken:
                part.stats.deletes += 1
                part.deletions.append((offset, Scored.unmatched_deletion(event.user_id, event.id)))
            elif contribution is None or (deletion := Scored.deletion(event.user_id, event.id, contribution)) is None:
                part.stats.deletes_unmatched += 1
                part.deletions.append((offset, Scored.unmatched_deletion(event.user_id, event.id)))
            else:
                part.stats.deletes += 1
                part.deletions.append((offset, deletion))
            taken.add(key)
    for part in parts:
        part.valid = [item for item in part.valid if (item.event.user_id, item.event.id) not in taken]


def _drop_duplicates(parts: list[ParsedRange], target: ToneStore) -> None:
    """Leave out the tweets whose id was counted within the dedupe horizon, and a task's later copies of a tweet.

    The first copy counts (by offset): a duplicate with another text changes nothing. Checked again, atomically, in
    the store's step that records the ids (a duplicate counted in between refuses the step; the retry leaves it out).
    """
    if not target.config.dedupe_horizon_s:
        return
    wanted: dict[str, list[str]] = {}
    for part in parts:
        for item in part.valid:
            if not item.partial:
                wanted.setdefault(item.event.user_id, []).append(item.event.id)
    seen = target.counted_ids(wanted)
    for part in parts:
        kept = []
        for item in part.valid:
            key = (item.event.user_id, item.event.id)
            if key in seen and not item.partial:
                part.stats.duplicates += 1
                continue
            seen.add(key)
            kept.append(item)
        part.valid = kept


def _count(part: ParsedRange, config: TaskConfig, target: ToneStore, last: int | None) -> None:
    """Count one range's tweets in the store, per record (see count_records), and fill its stats."""
    s = part.stats
    s.valid, s.invalid = len(part.valid), len(part.dead)
    s.unscored = sum(not x.scored for x in part.scored)
    s.reasons = json.dumps(Counter(letter.reason for letter in part.dead))
    s.labels = json.dumps(Counter(x.label for x in part.scored if x.scored))
    s.model_version = ",".join(sorted({x.model_version for x in part.scored if x.scored}))
    s.shadowed = sum(x.shadow is not None for x in part.scored)
    records = [(item.offset, scored) for item, scored in zip(part.valid, part.scored, strict=True)]
    if part.deletions:
        records = sorted(records + part.deletions, key=lambda r: r[0])
    done = count_records(
        target, config.query, s.topic, s.partition, records, s.end_offset, step=config.step_tweets, last=last
    )
    s.counted, s.steps = done.counted, done.steps
    s.already += done.already
    s.applied = done.steps > 0


def _send(parts: list[ParsedRange], config: TaskConfig, producer: Callable[[], Producer]) -> None:
    """At least once: send every range's dead letters and scored tweets, and flush."""
    if not any(part.dead or part.wire for part in parts):
        return
    sink = producer()
    for part in parts:
        for letter in (d.fitted(config.dead_letter_max_bytes) for d in part.dead):
            sink.send(config.dlq_topic, key=letter.key, value=letter.value, headers=letter.headers())
        for key, value in part.wire:
            sink.send(config.scored_topic, key=key, value=value)
    sink.flush()  # raises if the broker did not take them all: nothing below runs, the batch is retried


def _write_transactions(parts: list[ParsedRange], config: TaskConfig, sink: Outputs) -> None:
    """Each range's dead letters and scored tweets in one transaction with its offsets (see tone.kafka.transactions).

    Every range is committed, even one with nothing to write: the group's offset is the lag the monitor reports.
    A failure raises before anything is counted: the task is retried and the retry writes what is not committed.
    """
    ranges = []
    for part in parts:
        s = part.stats
        letters = (d.fitted(config.dead_letter_max_bytes) for d in part.dead)
        out = [
            Output(offset, config.dlq_topic, letter.key, letter.value, letter.headers())
            for offset, letter in zip(part.dead_offsets, letters, strict=True)
        ]
        out += [
            Output(item.offset, config.scored_topic, key, value)
            for item, (key, value) in zip(part.valid, part.wire, strict=True)
        ]
        out.sort(key=lambda o: o.source_offset)
        ranges.append(RangeOutputs(s.topic, s.partition, s.end_offset, out))
    for part, sent in zip(parts, sink.write_many(ranges), strict=True):
        part.stats.sent = sent


def run_task(  # noqa: PLR0913, PLR0912 - the task's sinks and resources, each built only when needed
    config: TaskConfig,
    sources: Iterable[Iterable[RecordChunk]],
    scorer: Callable[[str], Scorer],
    producer: Callable[[], Producer],
    store: Callable[[], ToneStore],
    clock: Callable[[], float] = time.time,
    reference: Callable[[], Scorer] | None = None,
    markers: Mapping[tuple[str, int], int | None] | None = None,
    outputs: Callable[[], Outputs] | None = None,
    detector: Callable[[], LanguageDetector] | None = None,
    shadow: Callable[[], Scorer] | None = None,
) -> list[RangeStats]:
    """One task's work over its Kafka ranges (see the module docstring); one stats row per range.

    ``scorer(spec)`` gives a route's scorer (``default``: the job's); it, ``producer`` and ``detector`` are called
    only when needed (a task of invalid records loads no model; a task of declared languages no detector). Without
    ``detector`` a tweet's language is its declared one or ``und``.
    ``reference`` (VADER in the stream) scores a ``drift_sample`` of the valid tweets too, for the drift signal.
    Per-task times (parse, score, kafka) are reported on the first range's row; the batch report sums them.
    ``markers``: store markers the caller read already for this task (read from the store otherwise).
    ``outputs``: the transactional writer, for ``output_guarantee`` exactly_once (``producer`` is then not used).
    ``shadow``: the shadow candidate (loaded only when a tweet is in its sample): see :func:`_shadow`.
    """
    t0 = time.perf_counter()
    parts = [part for source in sources for part in parse_ranges(source, config)]
    if not parts:
        return []
    first = parts[0].stats
    first.parse_s = time.perf_counter() - t0
    sink = None
    if config.output_guarantee == EXACTLY_ONCE:
        if outputs is None:
            msg = "exactly_once outputs need an Outputs writer"
            raise ValueError(msg)
        sink = outputs()
        sink.prepare([(part.stats.topic, part.stats.partition) for part in parts])  # while the task scores

    target = store()
    read = _skip_counted(parts, config, target, markers or {})
    _skip_counted_in_shards(parts, config, target)
    _forget_and_keep_out(parts, target)
    _drop_duplicates(parts, target)
    _deletions(parts, target)

    if any(part.valid for part in parts):
        t0 = time.perf_counter()
        _languages(parts, config, detector)
        first.lang_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = _score(parts, config, scorer)
        first.score_s = time.perf_counter() - t0
        if shadow is not None:
            _shadow(parts, config, shadow)
        for part in parts:
            _prepare(part)
        if model is not None and reference is not None and config.drift_sample > 0 and model.kind != "vader":
            checker = reference()
            if set(checker.labels) == set(model.labels):  # an emotion model has nothing to compare with
                _compare(parts, max(1, round(1 / config.drift_sample)), model, checker)

    t0 = time.perf_counter()
    if sink is not None:
        _write_transactions(parts, config, sink)
    else:
        _send(parts, config, producer)
    first.kafka_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for part in parts:
        _count(part, config, target, read[id(part)])
    first.redis_s = time.perf_counter() - t0

    now = clock()
    for part in parts:
        stamps = [item.stamp_s for item in part.valid]
        if stamps:
            # Age of the range's oldest valid record when its tweets reached the store: its worst lag.
            part.stats.max_lag_s = now - min(stamps)
            step = max(1, len(stamps) // LAG_SAMPLE)
            part.stats.lags = json.dumps([round(now - t, 4) for t in stamps[::step]])
    return [part.stats for part in parts]


def chunks_of(records: Iterable[tuple[str, int, int, int, bytes | None, bytes | None]]) -> Iterator[RecordChunk]:
    """Records (topic, partition, offset, timestamp ms, key, value) as one chunk per run of a partition (tests)."""
    from tone.kafka.readers import RecordChunk

    pending: RecordChunk | None = None
    for topic, partition, offset, ts, key, value in records:
        if pending is not None and (pending.topic, pending.partition) != (topic, partition):
            yield pending
            pending = None
        if pending is None:
            pending = RecordChunk(topic, partition)
        pending.add(offset, ts, key, value)
    if pending is not None:
        yield pending
