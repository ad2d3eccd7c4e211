"""Writes examples/conversation.jsonl: three hours of a tagged feed for `make demo` (python examples/conversation.py).

Invented texts, not real tweets (a demo, not a measurement): 12 tweets a minute from 300 users about #launch,
#weather, #coffee and $ACME. #launch turns from mostly positive to mostly negative at 10:30 UTC (minute 90); the
others stay as they are. Some tweets declare their tags as X's v2 entities do, some only carry them in the text.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TURN_MINUTE = 90
TEXTS = {
    "positive": [
        "Loving the new {t}, great work!",
        "{t} is brilliant, best update in ages",
        "So happy with {t} today",
        "Really impressed by {t}, thank you",
        "{t} made my morning, wonderful",
    ],
    "negative": [
        "{t} is broken again, this is awful",
        "Terrible experience with {t}, so disappointed",
        "I hate what they did to {t}",
        "{t} crashed twice, worst release ever",
        "Angry about {t}, what a mess",
    ],
    "neutral": [
        "Reading the notes on {t}",
        "{t} update at 3pm today",
        "Anyone tried {t} yet?",
        "Meeting about {t} at noon",
    ],
}
TAGS = {"#launch": (0.15, 0.25), "#weather": (0.3, 0.4), "#coffee": (0.1, 0.3), "$ACME": (0.25, 0.5)}  # neg, neu


def main() -> None:
    """Write the file (the same every time: a seeded generator)."""
    rng = random.Random(39)
    out = []
    for minute in range(180):
        for j in range(12):
            tag = rng.choice(list(TAGS))
            negative, neutral = (0.7, 0.15) if tag == "#launch" and minute >= TURN_MINUTE else TAGS[tag]
            x = rng.random()
            label = "negative" if x < negative else "neutral" if x < negative + neutral else "positive"
            at = START + timedelta(minutes=minute, seconds=j * 5 + rng.randrange(5))
            tweet = {
                "id": f"conv-{minute}-{j}",
                "user_id": f"conv_user{rng.randrange(300):03d}",
                "text": rng.choice(TEXTS[label]).format(t=tag),
                "created_at": at.isoformat().replace("+00:00", "Z"),
                "lang": "en",
            }
            if rng.random() < 0.5:  # as X's v2 API gives them: the stream reads these instead of the text
                kind = "cashtags" if tag.startswith("$") else "hashtags"
                tweet["entities"] = {kind: [{"tag": tag[1:]}]}
            out.append(json.dumps(tweet, ensure_ascii=False))
    Path(__file__).with_name("conversation.jsonl").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
