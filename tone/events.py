"""The wire formats and the one function that validates a tweet.

Formats: the tweet event (producer -> stream), a tweet's deletion and a user's erasure on the same topic
(:class:`DeleteEvent`, :class:`ForgetEvent`), and the scored tweet (stream -> scored topic).

:func:`parse_event` never raises on bad input: it returns either a :class:`TweetEvent` or an :class:`Invalid`
carrying a stable reason code (for dashboards and dead-letter filters) and a human detail. The user-id rule
(:func:`check_user_id`) is the one the lookups and the HTTP API apply too; tweet ids follow :func:`check_id`.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _quote  # json.dumps' own escaper (C), ensure_ascii as it does
from typing import Any, Final

from tone.tags import declared as declared_tags

# Stable reason codes written to the dead-letter topic; add, never rename.
OVERSIZED_MESSAGE: Final = "oversized_message"
INVALID_UTF8: Final = "invalid_utf8"
INVALID_JSON: Final = "invalid_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_FIELD: Final = "missing_field"
WRONG_TYPE: Final = "wrong_type"
INVALID_VALUE: Final = "invalid_value"
EMPTY_TEXT: Final = "empty_text"
OVERSIZED_TEXT: Final = "oversized_text"
INVALID_TIMESTAMP: Final = "invalid_timestamp"
NAIVE_TIMESTAMP: Final = "naive_timestamp"
# Not a property of the bytes alone: created_at is later than the record's Kafka timestamp by more than
# TONE_MAX_FUTURE_S. A time is data, not a command: one far ahead would freeze the user's EWMA and last_seen.
FUTURE_TIMESTAMP: Final = "future_timestamp"
# Not a property of the bytes: handling this one record raised (the exception is in the detail); the rest of its
# batch goes on.
INTERNAL_ERROR: Final = "internal_error"
REASONS: Final = (
    OVERSIZED_MESSAGE,
    INVALID_UTF8,
    INVALID_JSON,
    NOT_AN_OBJECT,
    MISSING_FIELD,
    WRONG_TYPE,
    INVALID_VALUE,
    EMPTY_TEXT,
    OVERSIZED_TEXT,
    INVALID_TIMESTAMP,
    NAIVE_TIMESTAMP,
    FUTURE_TIMESTAMP,
    INTERNAL_ERROR,
)

DEFAULT_MAX_TEXT_CHARS: Final = 4000
MAX_DEAD_LETTER_KEY_BYTES: Final = 1024  # a cut dead letter keeps at most this much of its key
DEFAULT_MAX_MESSAGE_BYTES: Final = 65_536
MAX_ID_CHARS: Final = 64
MAX_USER_ID_CHARS: Final = 256
MAX_LANG_CHARS: Final = 64
# What an event's ``lang`` holds when the record declared one that cannot be a language tag (not a string, or longer
# than MAX_LANG_CHARS): no tag matches it, so the stream ignores it and counts it (tone.language.normalize_tag).
INVALID_LANG: Final = "<invalid>"
MAX_SOURCE_CHARS: Final = 64

# Tweet ids keep to a safe alphabet. User ids may be any text (the store encodes them inside its keys, see
# tone.aggregates.store.key_part); see check_user_id.
ID_ALPHABET: Final = "letters, digits and _ . : @ -"
# The user-id rule (see check_user_id) as a pattern plus a length, as the API publishes it in its OpenAPI schema
# (written for both Python's and Rust's regex engines: no look-around). Lone surrogates cannot reach the API (URLs
# are UTF-8); check_user_id refuses them too.
USER_ID_PATTERN: Final = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_USER_ID_RE: Final = re.compile(USER_ID_PATTERN)
_SURROGATE_ID_RE: Final = re.compile("[\ud800-\udfff]")
ID_PATTERN: Final = rf"^[A-Za-z0-9_.:@-]{{1,{MAX_ID_CHARS}}}$"
_ID_RE: Final = re.compile(ID_PATTERN)
# Lone UTF-16 surrogates survive json.loads ("\ud800") but cannot be encoded to UTF-8 downstream.
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class TweetEvent:
    """One valid tweet. ``created_at`` is always timezone-aware."""

    id: str
    user_id: str
    text: str
    created_at: datetime
    lang: str | None = None
    source: str | None = None
    tags: tuple[str, ...] | None = None  # declared by the source (tone.tags.declared); None: parsed from the text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the wire format the producer writes and the stream reads."""
        # Built by hand: dataclasses.asdict deep-copies every field and was a third of the producer's CPU time.
        data: dict[str, Any] = {
            "id": self.id,
            "user_id": self.user_id,
            "text": self.text,
            "created_at": self.created_at.isoformat(),
        }
        if self.lang is not None:
            data["lang"] = self.lang
        if self.source is not None:
            data["source"] = self.source
        if self.tags is not None:
            data["tags"] = list(self.tags)
        return data

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes for Kafka."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class ScoredTweet:
    """One counted tweet as the stream writes it to the scored topic (keyed by user id).

    ``lang`` is its language and ``lang_source`` where that came from (declared, detected, und). A tweet no route
    scores has no label, probabilities, polarity or model, and says why in ``unscored`` (``no_route``).
    """

    id: str
    user_id: str
    created_at: datetime
    label: str | None
    probs: dict[str, float]
    polarity: float | None
    model_version: str | None
    lang: str = "und"
    lang_source: str = "und"
    unscored: str | None = None
    # The shadow candidate's score, when this tweet was in its sample: {"model", "label", "polarity"}.
    shadow: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()  # the hashtags and cashtags it counted in (tone.tags)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the scored topic."""
        data: dict[str, Any] = {
            "id": self.id,
            "user_id": self.user_id,
            "created_at": self.created_at.isoformat(),
            "label": self.label,
            "probs": self.probs,
            "polarity": self.polarity,
            "model_version": self.model_version,
            "lang": self.lang,
            "lang_source": self.lang_source,
        }
        if self.unscored is not None:
            data["unscored"] = self.unscored
        if self.shadow is not None:
            data["shadow"] = self.shadow
        if self.tags:
            data["tags"] = list(self.tags)
        return data

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes for Kafka: the bytes ``json.dumps(self.to_dict())`` gives, built about 1.4x faster.

        Every scored tweet goes through here (12% of the stream's worker CPU in a backlog drain, docs/benchmarks.md):
        json.dumps walks a dict through its generic encoder, while the shape here is fixed. Strings go through
        json's own C escaper and floats through ``float.__repr__``, as json.dumps does; anything else (a number that is
        not a finite float, such as numpy's float64 or an int; a label that is not a string) takes json.dumps' own
        path, so the bytes never differ.
        """
        numbers = (*self.probs.values(), self.polarity)
        texts = (*self.probs, self.id, self.user_id, self.label, self.model_version, self.lang, self.lang_source)
        if (
            self.unscored is not None
            or self.polarity is None
            or self.label is None
            or self.model_version is None
            or not all(type(x) is float and math.isfinite(x) for x in numbers)
            or not all(isinstance(t, str) for t in texts)
        ):
            return json.dumps(self.to_dict()).encode()
        probs = ", ".join(f"{_quote(label)}: {float.__repr__(p)}" for label, p in self.probs.items())
        return (
            f'{{"id": {_quote(self.id)}, "user_id": {_quote(self.user_id)}, '
            f'"created_at": {_quote(self.created_at.isoformat())}, "label": {_quote(self.label)}, '
            f'"probs": {{{probs}}}, "polarity": {float.__repr__(self.polarity)}, '
            f'"model_version": {_quote(self.model_version)}, "lang": {_quote(self.lang)}, '
            f'"lang_source": {_quote(self.lang_source)}'
            + ("" if self.shadow is None else f', "shadow": {_shadow_json(self.shadow)}')
            + ("}" if not self.tags else f', "tags": [{", ".join(map(_quote, self.tags))}]}}')
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ScoredTweet:
        """Read one back (consumers of the scored topic, tests)."""
        d = json.loads(raw)
        return cls(
            d["id"],
            d["user_id"],
            datetime.fromisoformat(d["created_at"]),
            d["label"],
            {str(k): float(v) for k, v in d["probs"].items()},
            None if d["polarity"] is None else float(d["polarity"]),
            d["model_version"],
            d.get("lang", "und"),
            d.get("lang_source", "und"),
            d.get("unscored"),
            d.get("shadow"),
            tuple(d.get("tags", ())),
        )


def _shadow_json(shadow: dict[str, Any]) -> str:
    """``json.dumps(shadow)`` for the usual shape (model, label, a finite float polarity), built as to_json builds."""
    model, label, polarity = shadow.get("model"), shadow.get("label"), shadow.get("polarity")
    if (
        len(shadow) == 3  # noqa: PLR2004 - model, label, polarity
        and isinstance(model, str)
        and isinstance(label, str)
        and type(polarity) is float
        and math.isfinite(polarity)
    ):
        return f'{{"model": {_quote(model)}, "label": {_quote(label)}, "polarity": {float.__repr__(polarity)}}}'
    return json.dumps(shadow)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the stream could not use, as it goes to the dead-letter topic.

    The original key and bytes as they arrived, and headers ``reason`` (a stable code), ``detail`` and ``source``
    (``topic:partition:offset``).
    """

    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    source: str
    truncated: int | None = None  # the original's size in bytes (key + value), when cut to fit (see fitted)

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        """The Kafka headers of the dead letter (``truncated``: the original's size, when it was cut)."""
        out: list[tuple[str, str | bytes | None]] = [
            ("reason", self.reason.encode()),
            ("detail", self.detail.encode()),
            ("source", self.source.encode()),
        ]
        if self.truncated is not None:
            out.append(("truncated", str(self.truncated).encode()))
        return out

    def fitted(self, max_bytes: int) -> DeadLetter:
        """This letter, its key and value cut so that key + value + headers take at most ``max_bytes``.

        The original came through the broker, but with headers (and a producer's own, lower, limit: librdkafka's
        message.max.bytes is 1,000,000 against the broker's 1,048,588) a copy of a record near the limit is refused
        (MSG_SIZE_TOO_LARGE), and the range's transaction with it, for ever. The cut keeps the start of each and says
        so in a ``truncated`` header with the original's size.
        """
        key, value = self.key or b"", self.value or b""
        room = max_bytes - sum(len(k) + len(v or b"") for k, v in self.headers()) - 64  # 64: the truncated header
        if len(key) + len(value) <= room:
            return self
        cut_key = key[: min(len(key), MAX_DEAD_LETTER_KEY_BYTES, max(0, room))]
        cut_value = value[: max(0, room - len(cut_key))]
        size = len(key) + len(value)
        return DeadLetter(
            cut_key if self.key is not None else None,
            cut_value if self.value is not None else None,
            self.reason,
            self.detail,
            self.source,
            size,
        )


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a record was rejected: ``reason`` is one of :data:`REASONS`, ``detail`` says what exactly."""

    reason: str
    detail: str

    def __bool__(self) -> bool:  # lets callers write `if not result:` for the rejected case
        return False


def check_id(value: str, name: str = "user_id") -> str | None:
    """Why ``value`` is not a valid id (tweet or user), or None when it is."""
    if not value:
        return f"{name} must not be empty"
    if len(value) > MAX_ID_CHARS:
        return f"{name} is {len(value)} characters, more than {MAX_ID_CHARS}"
    if not _ID_RE.fullmatch(value):
        return f"{name} {value[:20]!r} may hold only {ID_ALPHABET}"
    return None


def check_user_id(value: str) -> str | None:
    """Why ``value`` is not a valid user id, or None: the rule shared by the stream, the CLI and the API.

    A user id is any text of 1 to 256 characters that is not only whitespace and holds no control character
    (U+0000-U+001F, U+007F-U+009F) and no lone UTF-16 surrogate. ``:``, ``*``, braces, spaces and any other
    character are fine: ids never become key syntax.
    """
    if len(value) <= MAX_USER_ID_CHARS and _USER_ID_RE.fullmatch(value) and not _SURROGATE_ID_RE.search(value):
        return None
    if not value:
        return "user_id must not be empty"
    if len(value) > MAX_USER_ID_CHARS:
        return f"user_id is {len(value)} characters, more than {MAX_USER_ID_CHARS}"
    if not value.isprintable():
        for ch in value:
            category = unicodedata.category(ch)
            if category == "Cc":
                return f"user_id holds a control character U+{ord(ch):04X}"
            if category == "Cs":
                return "user_id holds a lone UTF-16 surrogate"
    if not value.strip():
        return "user_id is only whitespace"
    return f"user_id {value[:20]!r} does not match {USER_ID_PATTERN}"  # not reached: the cases above cover it


def _id_field(obj: dict[str, Any], name: str) -> str | Invalid:  # noqa: PLR0911 - one reason per branch
    if name not in obj or obj[name] is None:
        return Invalid(MISSING_FIELD, f"{name} is required")
    value = obj[name]
    # Integer ids are common in exported datasets; bool is an int subclass and is never an id.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return Invalid(WRONG_TYPE, f"{name} must be a string or integer, got {type(value).__name__}")
    if problem := (check_user_id(value) if name == "user_id" else check_id(value, name)):
        return Invalid(INVALID_VALUE, problem)
    return value


def _optional_str(obj: dict[str, Any], name: str, limit: int) -> str | None | Invalid:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        return Invalid(WRONG_TYPE, f"{name} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        return Invalid(INVALID_VALUE, f"{name} is {len(value)} characters, more than {limit}")
    return value or None


def _declared_lang(obj: dict[str, Any]) -> str | None:
    """The declared language as given, INVALID_LANG for a value no tag can be.

    A language is never a reason to lose a tweet: the stream ignores a bad one, counts it, and detects instead.
    """
    value = obj.get("lang")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_LANG_CHARS:
        return INVALID_LANG
    return value


def _timestamp(obj: dict[str, Any]) -> datetime | Invalid:
    if "created_at" not in obj or obj["created_at"] is None:
        return Invalid(MISSING_FIELD, "created_at is required")
    raw = obj["created_at"]
    if not isinstance(raw, str):
        return Invalid(WRONG_TYPE, f"created_at must be an ISO-8601 string, got {type(raw).__name__}")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return Invalid(INVALID_TIMESTAMP, f"created_at {raw[:40]!r} is not ISO-8601")
    if value.tzinfo is None or value.utcoffset() is None:
        return Invalid(NAIVE_TIMESTAMP, f"created_at {raw[:40]!r} has no timezone; add Z or +00:00")
    try:
        # Aggregation works in UTC: a time valid in its own offset may not exist there (9999-12-31T23:59:59-23:59).
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        return Invalid(INVALID_TIMESTAMP, f"created_at {raw[:40]!r} is out of range in UTC (years 1-9999)")
    return value


def _text(obj: dict[str, Any], max_text_chars: int) -> str | Invalid:
    if "text" not in obj or obj["text"] is None:
        return Invalid(MISSING_FIELD, "text is required")
    text = obj["text"]
    if not isinstance(text, str):
        return Invalid(WRONG_TYPE, f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        return Invalid(EMPTY_TEXT, "text is empty or only whitespace")
    if len(text) > max_text_chars:
        return Invalid(OVERSIZED_TEXT, f"text is {len(text)} characters, more than {max_text_chars}")
    if _SURROGATE_RE.search(text):
        return Invalid(INVALID_UTF8, "text holds a lone UTF-16 surrogate escape")
    return text


def validate_event(obj: Any, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> TweetEvent | Invalid:
    """Check an already-decoded JSON value; return the event or the first reason it is invalid."""
    if not isinstance(obj, dict):
        return Invalid(NOT_AN_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    tweet_id = _id_field(obj, "id")
    if isinstance(tweet_id, Invalid):
        return tweet_id
    user_id = _id_field(obj, "user_id")
    if isinstance(user_id, Invalid):
        return user_id
    text = _text(obj, max_text_chars)
    if isinstance(text, Invalid):
        return text
    created_at = _timestamp(obj)
    if isinstance(created_at, Invalid):
        return created_at
    lang = _declared_lang(obj)
    source = _optional_str(obj, "source", MAX_SOURCE_CHARS)
    if isinstance(source, Invalid):
        return source
    return TweetEvent(tweet_id, user_id, text, created_at, lang, source, declared_tags(obj))


def parse_event(
    raw: bytes | str | None,
    *,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> TweetEvent | Invalid:
    """Decode and validate one Kafka message value as a tweet. Never raises for bad input."""
    result = parse_record(raw, max_text_chars=max_text_chars, max_message_bytes=max_message_bytes)
    if isinstance(result, DeleteEvent | ForgetEvent):
        return Invalid(INVALID_VALUE, "expected a tweet, got a deletion or an erasure")
    return result


@dataclass(frozen=True, slots=True)
class DeleteEvent:
    """``{"delete": {"id": TWEET_ID, "user_id": USER_ID}}``: the author deleted a tweet; its contribution goes."""

    id: str
    user_id: str

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes for Kafka (keyed by the user id, like the user's tweets)."""
        return json.dumps({"delete": {"id": self.id, "user_id": self.user_id}}, ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class ForgetEvent:
    """``{"forget": {"user_id": USER_ID}}``: erase a user (an account deleted; a request to be forgotten)."""

    user_id: str

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes for Kafka (keyed by the user id)."""
        return json.dumps({"forget": {"user_id": self.user_id}}, ensure_ascii=False).encode()


def _control(obj: dict[str, Any]) -> DeleteEvent | ForgetEvent | Invalid:
    """A deletion or an erasure, checked as tweets' ids are."""
    kind = "delete" if "delete" in obj else "forget"
    body = obj[kind]
    if not isinstance(body, dict):
        return Invalid(WRONG_TYPE, f'{kind} must be an object: {{"{kind}": {{"user_id": ...}}}}')
    user_id = _id_field(body, "user_id")
    if isinstance(user_id, Invalid):
        return user_id
    if kind == "forget":
        return ForgetEvent(user_id)
    tweet_id = _id_field(body, "id")
    if isinstance(tweet_id, Invalid):
        return tweet_id
    return DeleteEvent(tweet_id, user_id)


def parse_record(
    raw: bytes | str | None,
    *,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> TweetEvent | DeleteEvent | ForgetEvent | Invalid:
    """Decode and validate one Kafka message value: a tweet, a deletion or an erasure. Never raises for bad input."""
    if raw is None:
        return Invalid(INVALID_JSON, "message has no value (null)")
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > max_message_bytes:
        return Invalid(OVERSIZED_MESSAGE, f"message is {size} bytes, more than {max_message_bytes}")
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            return Invalid(INVALID_UTF8, f"byte {exc.start} is not valid UTF-8 ({exc.reason})")
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return Invalid(INVALID_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError as exc:  # Python's int-digit limit (an integer of thousands of digits)
        return Invalid(INVALID_JSON, f"a number is too large: {str(exc)[:120]}")
    except RecursionError:
        return Invalid(INVALID_JSON, "JSON nested too deeply")
    if isinstance(obj, dict) and len(obj) == 1 and ("delete" in obj or "forget" in obj):
        return _control(obj)  # a tweet with a field of that name among its others stays a tweet
    return validate_event(obj, max_text_chars=max_text_chars)
