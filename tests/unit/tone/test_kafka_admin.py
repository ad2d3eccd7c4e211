"""Topic administration without a broker: the admin client's futures, faked."""

import concurrent.futures
import gc
import threading
import weakref

import pytest

from tone.errors import ToneError
from tone.kafka import admin as admin_module
from tone.kafka.config import KafkaConnection

CONN = KafkaConnection(("127.0.0.1:1",))


class FakeAdmin:
    """Resolves its futures from another thread a moment later, as librdkafka does, but only while it is alive."""

    def __init__(self, answer: bool = True):
        self.answer = answer

    def delete_topics(self, names, operation_timeout):
        futures = {name: concurrent.futures.Future() for name in names}
        me = weakref.ref(self)

        def resolve():
            gc.collect()
            if me() is not None and me().answer:
                for future in futures.values():
                    future.set_result(None)

        threading.Timer(0.1, resolve).start()
        return futures


def test_delete_topics_keeps_its_client_until_the_answers_come(monkeypatch):
    monkeypatch.setattr(admin_module, "admin_client", lambda conn: FakeAdmin())
    done = threading.Event()
    thread = threading.Thread(target=lambda: (admin_module.delete_topics(CONN, ["a", "b"], timeout=1), done.set()))
    thread.daemon = True
    thread.start()
    assert done.wait(5), "delete_topics waited for futures its garbage-collected client could never resolve"


def test_delete_topics_gives_up_with_an_error_when_nothing_answers(monkeypatch):
    monkeypatch.setattr(admin_module, "admin_client", lambda conn: FakeAdmin(answer=False))
    clock = iter([0.0])  # then 100 s later, past the deadline
    monkeypatch.setattr(admin_module.time, "monotonic", lambda: next(clock, 100.0))
    with pytest.raises(ToneError, match="deleting topic 'a' on 127.0.0.1:1: no answer within 31 s"):
        admin_module.delete_topics(CONN, ["a"], timeout=1)
