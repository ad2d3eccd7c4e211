"""Exactly-once outputs: each input partition range's scored tweets and dead letters in one Kafka transaction.

The rule (TONE_OUTPUT_GUARANTEE=exactly_once): for each input (topic, partition) the stream's group
(``TONE_KAFKA_GROUP_PREFIX`` + query) holds the next input offset whose outputs are not written yet. A range's
outputs for the records at or above it are written in one transaction that also commits the range's end + 1 to that
group (``send_offsets_to_transaction``), so outputs and "written up to here" become visible together or not at all.
Redis counts the range only after the commit. A retried or duplicate attempt reads the group's offset again and
writes only what is above it: a record's outputs are written once, whatever the batch boundaries.

The producer's ``transactional.id`` is stable per (query, input topic, partition), never per attempt: a new
producer for the same id fences the old one (``init_transactions`` bumps the epoch, and aborts a transaction its
previous incarnation left open, so a killed task never blocks ``read_committed`` readers for longer than that), and
a fenced attempt's commit fails. The group's offset is read after the producer holds the id, so no other writer
can commit between the read and our commit. Kafka Streams' ``exactly_once`` (one producer per input partition)
follows the same pattern; Flink's KafkaSink keeps a pool of ids per subtask instead.

A consumer of ``tweets.scored`` or ``tweets.dlq`` must read with ``isolation.level=read_committed``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Final, Protocol

from tone.errors import ToneError
from tone.kafka.clients import Headers
from tone.kafka.config import PRODUCER_DEFAULTS, KafkaConnection
from tone.retry import backoff, with_retries

log = logging.getLogger(__name__)

ATTEMPTS: Final = 5  # a fenced or aborted transaction is redone this many times before the task fails
_REDO_DELAY: Final = backoff(0.1, 2.0)
EXACTLY_ONCE: Final = "exactly_once"
AT_LEAST_ONCE: Final = "at_least_once"


@dataclass(frozen=True)
class Output:
    """One record to write, and the input offset it comes from."""

    source_offset: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None


@dataclass(frozen=True)
class RangeOutputs:
    """One input range's outputs: those of input ``topic``/``partition`` up to offset ``end`` (inclusive)."""

    topic: str
    partition: int
    end: int
    outputs: Sequence[Output]


class Outputs(Protocol):
    """Writes a range's outputs exactly once (see the module docstring)."""

    def write(self, topic: str, partition: int, end: int, outputs: Sequence[Output]) -> int:
        """Write the outputs at or above the group's offset and commit ``end`` + 1, in one transaction.

        Returns how many were written (0 when the group is past ``end`` already).
        """

    def write_many(self, ranges: Sequence[RangeOutputs]) -> list[int]:
        """``write`` each range (each in its own transaction); how many each wrote. Raises if one failed."""

    def prepare(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Start taking the ids of these input partitions now, in the background; ``write`` waits for them."""

    def close(self) -> None:
        """Release the producers."""


def transactional_id(prefix: str, query: str, topic: str, partition: int) -> str:
    """The stable transactional.id of (query, input topic, partition)."""
    return f"{prefix}{query}.{topic}.{partition}"


class TransactionError(ToneError):
    """A range's outputs could not be committed; the task fails, and its retry (or the query's restart) writes them."""


class KafkaOutputs:
    """:class:`Outputs` on Kafka transactions (librdkafka), one producer per input partition in this process."""

    def __init__(  # noqa: PLR0913 - where, as whom, how long
        self,
        conn: KafkaConnection,
        group: str,
        query: str,
        *,
        id_prefix: str = "tone-out.",
        transaction_timeout_ms: int = 60_000,
        timeout_s: float = 60.0,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """``group``: the consumer group the offsets are committed to (the stream's lag group)."""
        from confluent_kafka import Consumer

        self.conn, self.group, self.query, self.id_prefix = conn, group, query, id_prefix
        self.timeout_s = timeout_s
        self._config = {**conn.librdkafka(), **PRODUCER_DEFAULTS, **(overrides or {})}
        # librdkafka refuses a delivery timeout longer than the transaction's: a record must fail before its
        # transaction times out.
        self._config["transaction.timeout.ms"] = transaction_timeout_ms
        self._config["delivery.timeout.ms"] = min(int(self._config["delivery.timeout.ms"]), transaction_timeout_ms)
        # A producer is made each time an input partition's range comes to this process after another process
        # held its id. librdkafka holds back a new producer's connection to a learned broker by up to this backoff
        # (100 ms by default); 10 ms made a new producer ready about 3x sooner (docs/benchmarks.md, "Figures behind
        # code"). Reconnects after an outage still back off exponentially up to reconnect.backoff.max.ms.
        self._config.setdefault("reconnect.backoff.ms", 10)
        # The group's committed offsets, read as read_committed readers see them: an offset committed by a
        # transaction still open is not returned until that transaction ends.
        self._consumer = Consumer(
            conn.librdkafka() | {"group.id": group, "enable.auto.commit": False, "isolation.level": "read_committed"}
        )
        self._producers: dict[tuple[str, int], Any] = {}
        self._taking: dict[tuple[str, int], Future[Any]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._writers: ThreadPoolExecutor | None = None  # not the pool above: a write waits for a take queued there
        self.fenced = 0  # producers replaced after another one took their id (tests, logs)
        self.evicted = 0  # producers let go because this process's next task did not need them

    def prepare(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Take these partitions' ids with new producers, in background threads, while the task scores.

        Spark gives a partition's next range to whichever Python worker is free, so a producer this process kept
        from an earlier range has most often been fenced since: in the paced bench the stream's 2 tasks ran in 4
        Python workers by turns, and 81 of 84 ranges needed a new producer. Taking the id here, before the outputs
        exist, hides that (connect, find the coordinator, init_transactions) behind the scoring, and the
        write never meets a fenced producer. Taking it early is safe: the group's offset is still read after the
        producer holds the id, and an attempt that loses the id to another one fails its commit as before.

        Producers kept for other partitions are let go here: this process takes a partition's id afresh whenever it
        gets the partition again, so they would never write, and kept they add up to one librdkafka instance (threads,
        connections) per partition in every worker.
        """
        wanted = set(partitions)
        for key in [k for k in self._producers if k not in wanted]:
            del self._producers[key]  # librdkafka's instance is destroyed with the last reference
            self.evicted += 1
        for key in [k for k, taking in self._taking.items() if k not in wanted and taking.done()]:
            del self._taking[key]  # taken for a task that failed before its write
            self.evicted += 1
        for key in partitions:
            if (taking := self._taking.get(key)) is not None and not taking.done():
                continue  # still being taken; one taken earlier and left unused (a failed task) may be fenced by now
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tone-txn-init")
            self._taking[key] = self._pool.submit(self._new_producer, *key)

    def _new_producer(self, topic: str, partition: int) -> Any:
        """A producer that holds the input partition's transactional.id (fencing any older holder)."""
        from confluent_kafka import Producer

        tid = transactional_id(self.id_prefix, self.query, topic, partition)
        producer = Producer({**self._config, "transactional.id": tid})
        # Connected first. init_transactions looks for the transaction coordinator through a broker that is up,
        # and if none is, it tries again only on librdkafka's fixed 500 ms timer. The first metadata answer
        # comes over the bootstrap connection, which librdkafka then closes; the second waits for the
        # connection to a broker it learned of: without this, half the new producers waited out that timer in
        # init_transactions (docs/benchmarks.md, "Figures behind code").
        producer.list_topics(topic, timeout=self.timeout_s)
        producer.list_topics(topic, timeout=self.timeout_s)
        producer.init_transactions(self.timeout_s)  # fences an older holder of the id; aborts its open transaction
        return producer

    def _producer(self, topic: str, partition: int) -> Any:
        """This process's producer for the input partition, holding its transactional.id (as far as it knows)."""
        key = (topic, partition)
        if (taking := self._taking.pop(key, None)) is not None:
            try:
                self._producers[key] = taking.result()
            except Exception as exc:  # noqa: BLE001 - taken again below, where a failure fails the write
                log.warning("taking the transactional id of %s[%d] failed (%s): trying again", topic, partition, exc)
                self._producers.pop(key, None)
        if key not in self._producers:
            self._producers[key] = self._new_producer(topic, partition)
        return self._producers[key]

    def committed(self, topic: str, partition: int) -> int:
        """The next input offset whose outputs are not written yet (0 when the group never committed).

        Retried while the group's coordinator moves or loads (a broker that just started or failed over).
        """
        from confluent_kafka import KafkaException, TopicPartition

        def read() -> int:
            (tp,) = self._consumer.committed([TopicPartition(topic, partition)], timeout=self.timeout_s)
            if tp.error is not None:
                raise KafkaException(tp.error)
            return max(0, int(tp.offset))

        what = f"reading group {self.group}'s offset of {topic}[{partition}]"
        try:
            return with_retries(read, transient=(KafkaException,), what=what, give_up_after_s=self.timeout_s,
                                base_s=0.1, cap_s=2.0)  # fmt: skip
        except KafkaException as exc:
            msg = f"{what} failed: {exc.args[0]}"
            raise TransactionError(msg) from exc

    def write(self, topic: str, partition: int, end: int, outputs: Sequence[Output]) -> int:
        """See :meth:`Outputs.write`; redone after a fenced or aborted attempt, reading the group's offset again."""
        from confluent_kafka import KafkaException, TopicPartition

        last: Exception | None = None
        for attempt in range(ATTEMPTS):
            producer = self._producer(topic, partition)
            start = self.committed(topic, partition)  # after the producer holds the id: see the module docstring
            if start > end:
                return 0
            todo = [o for o in outputs if o.source_offset >= start]
            try:
                producer.begin_transaction()
                # The offsets first: it asks the coordinators, so a producer fenced since its last use (another
                # process took the id) fails here, before it queues any record.
                offsets = [TopicPartition(topic, partition, end + 1)]
                producer.send_offsets_to_transaction(offsets, self._consumer.consumer_group_metadata(), self.timeout_s)
                for o in todo:
                    self._produce(producer, o)
                producer.commit_transaction(self.timeout_s)
                return len(todo)
            except KafkaException as exc:
                last = exc
                self._recover(topic, partition, producer, exc.args[0], attempt)
        msg = f"outputs of {topic}[{partition}] up to offset {end} not committed after {ATTEMPTS} tries: {last}"
        raise TransactionError(msg) from last

    def write_many(self, ranges: Sequence[RangeOutputs]) -> list[int]:
        """See :meth:`Outputs.write_many`: the ranges' transactions run at the same time.

        Each range has its own producer and transactional id, so nothing orders them, and a transaction is mostly
        waiting on the coordinator (offsets, commit): one after the other, a task of two ranges waited for the
        second one's turn (docs/benchmarks.md). All are waited for before a failure is raised, so none is
        still committing when the task fails and its retry starts.
        """
        if len(ranges) < 2:  # noqa: PLR2004 - nothing to overlap
            return [self.write(r.topic, r.partition, r.end, r.outputs) for r in ranges]
        if self._writers is None:
            self._writers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tone-txn-write")
        futures = [self._writers.submit(self.write, r.topic, r.partition, r.end, r.outputs) for r in ranges]
        wait(futures)
        return [f.result() for f in futures]

    def _produce(self, producer: Any, o: Output) -> None:
        while True:
            try:
                producer.produce(o.topic, key=o.key, value=o.value, headers=o.headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)

    def _recover(self, topic: str, partition: int, producer: Any, err: Any, attempt: int) -> None:
        """After a failed transaction: abort it, or drop a fenced producer (the next try makes a new one)."""
        if err.fatal() or not err.txn_requires_abort() and not err.retriable():
            # Fenced (another attempt holds the id now) or a producer in a fatal state: a new one re-takes the id.
            self.fenced += 1
            self._producers.pop((topic, partition), None)
            log.warning("transactional producer for %s[%d] replaced after: %s", topic, partition, err.str())
            return
        try:
            producer.abort_transaction(self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - an abort that fails leaves a producer we cannot trust: replace it
            log.warning("aborting the transaction of %s[%d] failed (%s): replacing its producer", topic, partition, exc)
            self._producers.pop((topic, partition), None)
        time.sleep(_REDO_DELAY(attempt + 1))  # the project's backoff, jittered: tasks redo apart

    def close(self) -> None:
        """Drop the producers and the offsets consumer.

        An open transaction of theirs is aborted by the id's next holder, or by the broker after its timeout.
        """
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)  # a take in flight ends with its timeout
        if self._writers is not None:
            self._writers.shutdown(wait=False, cancel_futures=True)
        self._taking.clear()
        self._producers.clear()
        self._consumer.close()


@dataclass
class MemoryOutputs:
    """An in-memory :class:`Outputs` for unit tests: committed offsets per input partition and what was written."""

    committed: dict[tuple[str, int], int] | None = None
    written: list[Output] | None = None
    fail_before_commit: bool = False  # a task killed after sending, before the commit: nothing becomes visible
    prepared: list[tuple[str, int]] | None = None

    def write(self, topic: str, partition: int, end: int, outputs: Sequence[Output]) -> int:
        """As Kafka does: only above the committed offset, all or nothing."""
        committed = self.committed if self.committed is not None else {}
        self.committed = committed
        start = committed.get((topic, partition), 0)
        if start > end:
            return 0
        todo = [o for o in outputs if o.source_offset >= start]
        if self.fail_before_commit:
            msg = "killed before the commit (test hook)"
            raise TransactionError(msg)
        self.written = [*(self.written or []), *todo]
        committed[(topic, partition)] = end + 1
        return len(todo)

    def write_many(self, ranges: Sequence[RangeOutputs]) -> list[int]:
        """One range after the other."""
        return [self.write(r.topic, r.partition, r.end, r.outputs) for r in ranges]

    def prepare(self, partitions: Sequence[tuple[str, int]]) -> None:
        """Noted (tests check that the pipeline asks before it writes)."""
        self.prepared = [*(self.prepared or []), *partitions]

    def close(self) -> None:
        """Nothing to release."""
