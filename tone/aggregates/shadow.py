"""Shadow evidence: how a candidate model's labels compare with the live model's on the same live tweets.

A stream with a shadow scorer (``TONE_SHADOW_SCORER``, or the registry's shadow version: ``tone models shadow``)
scores a sample of its tweets with the candidate too. The candidate's label never touches the aggregates; what is
counted is the comparison, per (live model, candidate) pair, in the same atomic store step as the tweets it was made
on (so a retried range never counts it twice, and a record counts in the evidence if and only if it counted):

- ``n`` tweets compared, ``agree`` of them with the same label, ``flip`` counts ``{live_label: {candidate_label: n}}``;
- ``dpol``: the sum of |polarity change|; ``live_s`` and ``shadow_s``: each model's scoring time, summed per tweet;
- per language: ``n`` and ``agree``;
- a sample of flipped tweets (the newest, bounded) for a person to read.

The stored form is one hash of counters per store shard (a Redis Cluster slot), fields ``live TAB candidate TAB
what``; readers sum the shards (:func:`evidence_view`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

SEP: Final = "\t"  # model versions hold no tab (tone.scoring.kinds: [A-Za-z0-9._:-] and paths without control chars)
FLIPS_KEPT: Final = 50  # flipped tweets kept per shard (the newest), for `tone models compare`
SUM_FIELDS: Final = frozenset({"dpol", "live_s", "shadow_s"})  # floats; every other field is an integer count


@dataclass(frozen=True, slots=True)
class Shadowed:
    """One tweet's candidate score beside its live one (what the scored tweet carries as ``shadow``)."""

    model: str  # the candidate's version
    label: str
    polarity: float
    live_s: float = 0.0  # the live model's time for this tweet (its batch's time / tweets)
    shadow_s: float = 0.0  # the candidate's


@dataclass
class StepEvidence:
    """What one store step adds to the evidence: counters by field (see the module docstring) and flipped tweets."""

    counts: dict[str, int] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    flips: list[str] = field(default_factory=list)  # JSON objects, oldest first

    def __bool__(self) -> bool:
        return bool(self.counts)


def _field(live: str, candidate: str, *what: str) -> str:
    return SEP.join((live, candidate, *what))


def step_evidence(tweets: Iterable[Any], *, flips_kept: int = FLIPS_KEPT) -> StepEvidence:
    """The evidence of a step's tweets (:class:`tone.aggregates.deltas.Scored` with ``shadow`` set; others skipped).

    One counter per (live, candidate, live label, candidate label, language) while going through the tweets, expanded
    into fields once at the end, and only the kept flipped tweets made JSON: every shadowed tweet passes here.
    """
    cells: Counter[tuple[str, str, str, str, str]] = Counter()
    sums: dict[tuple[str, str], list[float]] = {}
    flipped: list[Any] = []
    for tw in tweets:
        sh: Shadowed | None = tw.shadow
        if sh is None or not tw.scored or tw.deleted:
            continue
        cells[(tw.model_version, sh.model, tw.label, sh.label, tw.lang)] += 1
        acc = sums.get((tw.model_version, sh.model))
        if acc is None:
            acc = sums[(tw.model_version, sh.model)] = [0.0, 0.0, 0.0]
        acc[0] += abs(sh.polarity - tw.polarity)
        acc[1] += sh.live_s
        acc[2] += sh.shadow_s
        if tw.label != sh.label:
            flipped.append(tw)
    ev = StepEvidence()
    counts = ev.counts
    for (live, cand, label, theirs, lang), n in cells.items():
        agree = n if label == theirs else 0
        for name, value in (
            (_field(live, cand, "n"), n),
            (_field(live, cand, "agree"), agree),
            (_field(live, cand, "flip", label, theirs), n),
            (_field(live, cand, "lang", lang, "n"), n),
            (_field(live, cand, "lang", lang, "agree"), agree),
        ):
            counts[name] = counts.get(name, 0) + value
    for (live, cand), (dpol, live_s, shadow_s) in sums.items():
        ev.sums |= {
            _field(live, cand, "dpol"): dpol,
            _field(live, cand, "live_s"): live_s,
            _field(live, cand, "shadow_s"): shadow_s,
        }
    ev.flips = [_flip_json(tw) for tw in flipped[-flips_kept:]] if flips_kept else []
    return ev


def _flip_json(tw: Any) -> str:
    sh = tw.shadow
    return json.dumps(
        {
            "live_model": tw.model_version,
            "candidate": sh.model,
            "id": tw.tweet_id,
            "user_id": tw.user_id,
            "lang": tw.lang,
            "text": tw.text[:280],
            "live": tw.label,
            "shadow": sh.label,
            "live_polarity": round(tw.polarity, 4),
            "shadow_polarity": round(sh.polarity, 4),
        },
        ensure_ascii=False,
    )


def evidence_view(shards: Sequence[Mapping[str, str]], flips: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every (live, candidate) pair's evidence, summed over the shards' hashes; most compared first.

    Each: ``live``, ``candidate``, ``n``, ``agreement`` (share with the same label; None before any), ``churn``
    (1 - agreement), ``flips`` ``{live_label: {candidate_label: n}}`` (agreements included on the diagonal),
    ``mean_abs_polarity_change``, ``live_ms_per_tweet``, ``shadow_ms_per_tweet``, ``languages``
    ``{lang: {n, agreement}}`` and ``flipped`` (a sample of tweets whose label flipped).
    """
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for fields in shards:
        for name, raw in fields.items():
            parts = name.split(SEP)
            if len(parts) < 3:  # noqa: PLR2004 - live, candidate, what
                continue
            pair = totals.setdefault((parts[0], parts[1]), {"n": 0, "agree": 0, "flip": {}, "lang": {}, "sums": {}})
            what = parts[2:]
            try:
                value = float(raw) if what[0] in SUM_FIELDS else int(raw)
            except ValueError:
                continue  # a hand-edited field: left out
            if what in (["n"], ["agree"]):
                pair[what[0]] += value
            elif what[0] == "flip" and len(what) == 3:  # noqa: PLR2004
                row = pair["flip"].setdefault(what[1], {})
                row[what[2]] = row.get(what[2], 0) + value
            elif what[0] == "lang" and len(what) == 3:  # noqa: PLR2004
                lang = pair["lang"].setdefault(what[1], {"n": 0, "agree": 0})
                lang[what[2]] = lang.get(what[2], 0) + value
            elif what[0] in SUM_FIELDS:
                pair["sums"][what[0]] = pair["sums"].get(what[0], 0.0) + value
    out = []
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for raw in flips:
        try:
            item = json.loads(raw)
            samples.setdefault((str(item["live_model"]), str(item["candidate"])), []).append(item)
        except (ValueError, TypeError, KeyError):
            continue
    for (live, cand), pair in totals.items():
        n = pair["n"]
        sums = pair["sums"]
        agreement = pair["agree"] / n if n else None
        out.append(
            {
                "live": live,
                "candidate": cand,
                "n": n,
                "agreement": agreement,
                "churn": None if agreement is None else 1 - agreement,
                "flips": pair["flip"],
                "mean_abs_polarity_change": sums.get("dpol", 0.0) / n if n else None,
                "live_ms_per_tweet": 1000 * sums.get("live_s", 0.0) / n if n else None,
                "shadow_ms_per_tweet": 1000 * sums.get("shadow_s", 0.0) / n if n else None,
                "languages": {
                    lang: {"n": v["n"], "agreement": v["agree"] / v["n"] if v["n"] else None}
                    for lang, v in sorted(pair["lang"].items())
                },
                "flipped": samples.get((live, cand), [])[:FLIPS_KEPT],
            }
        )
    return sorted(out, key=lambda e: (-e["n"], e["live"], e["candidate"]))


def pair_evidence(
    evidence: Sequence[Mapping[str, Any]], candidate: str, live: str | None = None
) -> Mapping[str, Any] | None:
    """The evidence for ``candidate`` against ``live`` (any live model when None: the pair with the most tweets)."""
    rows = [e for e in evidence if e["candidate"] == candidate and (live is None or e["live"] == live)]
    return rows[0] if rows else None
