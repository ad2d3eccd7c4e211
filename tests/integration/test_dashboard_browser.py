"""The live dashboard in a real browser: headless Chromium (Debian's), driven by Playwright, against real Redis."""

import contextlib
import json
import os
import shutil
import threading
import time

import pytest
import uvicorn

from serving.api import create_app
from tests.conftest import free_port
from tests.helpers import REPO_ROOT
from tone.aggregates.deltas import Scored, batch_deltas
from tone.aggregates.factory import open_store

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
NEG = {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
POS = {"negative": 0.1, "neutral": 0.1, "positive": 0.8}
NEU = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}


def tweet(user, i, probs, t0=1_795_428_780):
    label = max(probs, key=probs.get)
    return Scored(
        user,
        f"{user}-{i}",
        t0 + 1200 * i,
        label,
        probs,
        probs["positive"] - probs["negative"],
        f"tweet {i} of {user}",
        "rnn-test",
        "en",
    )


@contextlib.contextmanager
def serving(s):
    """The API (and its dashboard) on a free port, in a thread, until the block ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served(isolated):
    """The API (and its dashboard) on a free port, over a Redis with two users and a stream health record."""
    s = isolated
    store = open_store(s)
    grumpy = [tweet("grumpy:1", i, NEG if i % 3 else NEU) for i in range(9)]
    # two tweets in a language no route scores: counted by language, no tone
    grumpy += [Scored("grumpy:1", f"ja-{i}", 1_795_428_780 + 600 * i, "", {}, 0.0, "最悪だ", "", "ja", scored=False)
               for i in range(2)]  # fmt: skip
    sunny = [tweet("sunny", i, POS) for i in range(4)]
    store.apply_range("q", "tweets", 0, 0, 12, batch_deltas(grumpy + sunny, 3600, 20))
    store.write_health(
        "tone",
        {
            "records": "18",
            "invalid": "5",
            "batches": "3",
            "restarts": "1",
            "rate": "812.0",
            "last_batch_at": f"{time.time():.3f}",
            "updated_at": f"{time.time():.3f}",
            "lag": '{"0": 2, "1": 1}',
            "languages": '{"en": 15, "ja": 3, "und": 2}',
            "unscored": "5",
            "dead_letters": '{"invalid_json": 4, "naive_timestamp": 1}',
            "model_version": "rnn-test",
            "drift": json.dumps(
                {
                    "window_s": 600,
                    "label_share": {"negative": 0.6, "positive": 0.4},
                    "training_share": {"negative": 0.25, "neutral": 0.2, "positive": 0.55},
                    "distance": 0.35,
                    "vader_disagreement": 0.1,
                    "sampled": 20,
                }
            ),
        },
    )
    with serving(s) as base:
        yield s, store, base


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium is not installed (make setup installs it as root: apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        yield tab
        browser.close()


def test_a_users_card_chart_lists_and_health_in_a_real_browser(served, page):
    s, store, base = served
    page.goto(f"{base}/?user=grumpy%3A1")  # linkable: the card opens directly
    page.wait_for_function("document.querySelector('[data-testid=card-tweets]').textContent === '11'", timeout=15000)
    agg = store.user("grumpy:1")
    assert page.text_content("[data-testid=card-user]") == "grumpy:1"
    assert page.text_content("[data-testid=card-scored]") == "9"
    assert "ja 18%" in page.text_content("[data-testid=card-languages]")  # 2 of 11
    assert "2 not scored" in page.text_content("[data-testid=card-languages]")
    for label, n in agg["counts"].items():
        assert page.text_content(f"[data-testid=card-counts] tr[data-label={label}] td:nth-child(2)") == str(n)

    page.wait_for_selector("[data-testid=chart] svg rect")
    drawn = page.eval_on_selector_all("[data-testid=chart] svg rect", "els => els.map(e => +e.dataset.count)")
    assert sum(drawn) == agg["scored"]  # every scored tweet of the user's last 48 hours is in the chart
    assert page.locator("[data-testid=recent] tr").count() == 11
    assert page.locator("[data-testid=recent] tr", has_text="not scored").count() == 2
    assert page.text_content("[data-testid=stream-languages]") == "en 75%, ja 15%, und 10% (5 not scored)"
    assert "grumpy:1" in page.text_content("[data-testid=top-negative]")
    assert "sunny" in page.text_content("[data-testid=top-positive]")
    assert page.text_content("[data-testid=lag]") == "3"
    assert "invalid_json 4" in page.text_content("[data-testid=dead-letters]")

    # live: new tweets show without a reload (the page polls every 2 s)
    store.apply_range("q", "tweets", 1, 0, 0, batch_deltas([tweet("grumpy:1", 20, NEG)], 3600, 20))
    page.wait_for_function("document.querySelector('[data-testid=card-tweets]').textContent === '12'", timeout=10000)

    shots = REPO_ROOT / "reports"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
    if os.environ.get("TONE_UPDATE_DOCS_SCREENSHOT"):
        page.screenshot(path=str(REPO_ROOT / "docs" / "dashboard.png"), full_page=True)

    # search another user from the page
    page.fill("#user", "sunny")
    page.click("#search button")
    page.wait_for_function("document.querySelector('[data-testid=card-user]').textContent === 'sunny'", timeout=10000)
    assert page.text_content("[data-testid=card-tweets]") == "4"
    assert "user=sunny" in page.url


@pytest.fixture
def conversation(isolated):
    """The API over a Redis holding 100 minutes of tagged tweets: #launch turns negative at minute 60."""
    import random

    from tone.aggregates.store import count_records

    s = isolated
    store = open_store(s)
    rng = random.Random(5)
    t0 = 1_795_428_000.0
    recs = []
    for o in range(100 * 12):
        t = t0 + o * 5
        tag = ("#launch", "#steady", "$tsla")[o % 3]
        share = 0.8 if tag == "#launch" and t >= t0 + 3600 else 0.1
        probs = NEG if rng.random() < share else rng.choice([POS, NEU])
        label = max(probs, key=probs.get)
        recs.append((o, Scored(f"u{o % 40}", f"c{o}", t, label, probs, probs["positive"] - probs["negative"],
                               f"tweet {o} {tag}", "rnn-test", "en", tags=(tag,))))  # fmt: skip
    count_records(store, "q", "tweets", 0, recs, len(recs) - 1)
    with serving(s) as base:
        yield s, store, base


def test_the_conversation_view_shows_the_timeline_tags_and_the_active_shift_in_a_real_browser(conversation, page):
    from tone.aggregates.timeline import timeline_report
    from tone.tags import STREAM

    s, store, base = conversation
    page.goto(base)
    page.wait_for_selector("[data-testid=timeline] svg rect", timeout=15000)
    drawn = page.eval_on_selector_all("[data-testid=timeline] svg rect", "els => els.map(e => +e.dataset.count)")
    want = timeline_report(store, STREAM, 60, s)
    assert sum(drawn) == sum(sum(m["counts"].values()) for m in want["minutes"]) == 60 * 12
    launch = page.locator("[data-testid=shift]", has_text="#launch")
    launch.wait_for(timeout=15000)
    assert "to negative" in launch.text_content()
    assert page.locator("[data-testid=shift]", has_text="#steady").count() == 0
    assert page.locator("[data-testid=timeline] svg line[data-shift]").count() >= 1  # the stream's own shift, marked
    active = page.text_content("[data-testid=tags-active]")
    assert all(tag in active for tag in ("#launch", "#steady", "$tsla"))
    assert "#launch" in page.text_content("[data-testid=tags-negative] tr:first-child")
    shots = REPO_ROOT / "reports"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "dashboard-conversation.png"), full_page=True)
