"""The stream restarts a failed query from its checkpoint with backoff, and gives up after too many in a row."""

import pytest

from streaming.job import BatchReport, ToneStream, is_data_loss
from tone.errors import ConfigError, DataLossError
from tone.settings import load_settings


class FakeQuery:
    """Fails (like a StreamingQueryException) after adding ``batches`` reports, or ends cleanly."""

    def __init__(self, job, batches, fail):
        self.job, self.batches, self.fail, self.stopped = job, batches, fail, False

    def awaitTermination(self):  # noqa: N802 - Spark's name
        self.job.reports.extend(BatchReport(self.job.batches + i) for i in range(self.batches))
        self.job.batches += self.batches
        if self.fail:
            raise RuntimeError("StreamingQueryException: Connection refused\n\tat org.apache.spark...")

    def exception(self):
        return None

    def stop(self):
        self.stopped = True


def job_with(script, tmp_path):
    job = ToneStream(load_settings(), scorer="vader", checkpoint=tmp_path / "ckpt")
    runs = iter(script)
    started = []

    def start(_spark):
        batches, fail = next(runs)
        started.append(FakeQuery(job, batches, fail))
        return started[-1]

    job.start = start
    return job, started


def test_a_failed_query_is_restarted_with_backoff_until_it_ends(tmp_path):
    job, started = job_with([(0, True), (0, True), (2, True), (0, True), (1, False)], tmp_path)
    sleeps = []
    job.run(None, sleep=sleeps.append, max_restarts=3)
    # progress (2 batches) after the second restart resets the backoff; each wait is jittered down to half
    assert [(full / 2 <= s <= full) for s, full in zip(sleeps, [1.0, 2.0, 1.0, 2.0], strict=True)] == [True] * 4
    assert job.restarts == 4
    assert all(q.stopped for q in started)


def test_it_gives_up_after_max_restarts_in_a_row(tmp_path):
    job, _ = job_with([(0, True)] * 4, tmp_path)
    sleeps = []
    with pytest.raises(RuntimeError, match="Connection refused"):
        job.run(None, sleep=sleeps.append, max_restarts=2)
    assert [(full / 2 <= s <= full) for s, full in zip(sleeps, [1.0, 2.0], strict=True)] == [True] * 2


def test_the_log_line_names_the_workers_python_error():
    from streaming.job import _first_line

    text = (
        "[STREAM_FAILED] Query [id = 1] terminated with exception: Job aborted due to stage failure:\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "/x/streaming/process.py", line 80, in _store\n'
        "    store.ping()\n"
        "tone.errors.ServiceError: Redis at redis://127.0.0.1:6379/0 refused the credentials\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException(PythonRunner.scala:1)\n"
        "org.apache.spark.SparkException: Job aborted\n"
    )
    assert _first_line(RuntimeError(text)).startswith("tone.errors.ServiceError: Redis at")
    assert _first_line(RuntimeError("just this\nand more")) == "just this"


def test_data_loss_fails_at_once_instead_of_restarting(tmp_path):
    class LostQuery(FakeQuery):
        def awaitTermination(self):  # noqa: N802 - Spark's name
            raise RuntimeError(
                "StreamingQueryException: An exception was thrown from the Python worker:\n"
                "Traceback (most recent call last):\n  File ...\n"
                "tone.errors.DataLossError: offsets of topic 'tweets' were deleted (retention) before the stream "
                "read them (partition 0: offsets 10-39); ..."
            )

    job = ToneStream(load_settings(), scorer="vader", checkpoint=tmp_path / "ckpt")
    starts = []

    def start(_spark):
        starts.append(LostQuery(job, 0, True))
        return starts[-1]

    job.start = start
    with pytest.raises(DataLossError, match=r"^offsets of topic 'tweets' were deleted \(retention\)"):
        job.run(None, max_restarts=5, sleep=lambda _: None)
    assert len(starts) == 1 and job.restarts == 0
    assert is_data_loss(RuntimeError("[KAFKA_DATA_LOSS.START_OFFSET_RESET] Some data may have been lost ..."))
    assert not is_data_loss(RuntimeError("Connection refused; options: failOnDataLoss -> true"))


def test_a_start_that_fails_is_retried_like_a_failed_query(tmp_path):
    job = ToneStream(load_settings(), scorer="vader", checkpoint=tmp_path / "ckpt")
    attempts = []

    def start(_spark):
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("Redis at redis://127.0.0.1:6379/0: connection refused")
        return FakeQuery(job, 1, False)

    job.start = start
    job.run(None, max_restarts=5, sleep=lambda _: None)
    assert (len(attempts), job.restarts) == (3, 2)


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("TONE_REDIS_WAIT_REPLICAS=1, but not every Redis master has that many replicas"),
        DataLossError("topic 'tweets' went back behind what this query has read or counted"),
    ],  # fmt: skip
)
def test_what_a_start_finds_wrong_is_raised_at_once_not_restarted(tmp_path, error):
    job = ToneStream(load_settings(), scorer="vader", checkpoint=tmp_path / "ckpt")
    starts = []

    def start(_spark):
        starts.append(1)
        raise error

    job.start = start
    sleeps = []
    with pytest.raises(type(error)):
        job.run(None, sleep=sleeps.append, max_restarts=5)
    assert (len(starts), sleeps) == (1, [])
