"""`tone bench scorers|gpu|replay|langid|store|soak|api`: benchmarks that print figures (dev tooling in benchmarks/)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from tone_cli._common import cli_settings, console, dev_tool, say

app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)


@app.command("scorers")
def bench_scorers(
    tweets: Annotated[int, typer.Option(help="How many tweets (cycled from the dataset).")] = 2000,
    scorers: Annotated[list[str] | None, typer.Option("--scorer", help="Scorers to run (default: all).")] = None,
    pipeline: Annotated[bool, typer.Option(help="Include the Hugging Face pipeline references.")] = True,
    repeat: Annotated[int, typer.Option(help="Time each run this many times and keep the best.")] = 3,
    accuracy_data: Annotated[
        str,
        typer.Option(help="Macro-F1 on this dataset's test split (auto: the transformer's training data)."),
    ] = "auto",
    accuracy: Annotated[bool, typer.Option(help="Measure accuracy next to speed.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tweets/s and macro-F1 of each scorer and transformer backend, beside HF pipeline() per tweet and batch 64.

    All on the same tweets, in one run.
    """
    run_scorer_bench = dev_tool("benchmarks.scorers").run_scorer_bench

    result = run_scorer_bench(
        cli_settings(),
        n=tweets,
        scorers=scorers,
        with_pipeline=pipeline,
        repeat=repeat,
        accuracy_data=accuracy_data if accuracy else None,
        say=say,
    )
    if as_json:
        console.print_json(json.dumps(result))
        return
    accuracy_note = (
        f", macro-F1 on {result['accuracy_texts']} test tweets of {result['accuracy_data']}" if accuracy else ""
    )
    table = Table(
        title=f"scorer throughput, {result['tweets']} tweets, {result['device']}, {result['threads']} threads, "
        f"best of {result['repeat']}{accuracy_note}"
    )
    for col in (
        "scorer",
        "model",
        "tweets/s",
        "vs pipeline/tweet",
        "vs pipeline b64",
        "macro-F1",
        "same label as torch",
    ):
        table.add_column(col)
    for row in result["rows"]:
        table.add_row(
            row["name"],
            row["model"],
            f"{row['tweets_per_s']:.0f}",
            f"{row['vs_pipeline_per_tweet']:.1f}x" if row.get("vs_pipeline_per_tweet") else "",
            f"{row['vs_pipeline_b64']:.2f}x" if row.get("vs_pipeline_b64") else "",
            f"{row['macro_f1']:.4f}" if "macro_f1" in row else "",
            f"{row['agreement_vs_torch']:.2%}" if "agreement_vs_torch" in row else "",
        )
    console.print(table)
    if result.get("cpu_matmul_gflops"):
        console.print(
            "transformer GFLOP/s (real tokens): "
            + ", ".join(f"{r['name']} {r['gflops']:.0f}" for r in result["rows"] if "gflops" in r)
            + f"; this CPU's fp32 matmul: {result['cpu_matmul_gflops']:.0f}",
            highlight=False,
        )
    for row in result["rows"]:
        if row.get("int8_guard"):
            console.print(f"{row['name']}: int8 guard {row['int8_guard']}", highlight=False, markup=False)


@app.command("gpu")
def bench_gpu(
    tweets: Annotated[int, typer.Option(help="How many tweets (cycled from the dataset).")] = 20000,
    repeat: Annotated[int, typer.Option(help="Time each run this many times and keep the best.")] = 3,
    compile_model: Annotated[
        bool, typer.Option("--compile/--no-compile", help="Add a row with torch.compile(dynamic=True).")
    ] = True,
    pipeline_tweets: Annotated[int, typer.Option(help="Tweets for the per-tweet pipeline row (it is slow).")] = 2000,
    peak_tflops: Annotated[
        float | None, typer.Option(help="The device's dense bf16 peak in TFLOP/s (default: from its name).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A roberta-base-sized classifier (random weights) on real tweets: tweets/s and share of the bf16 FLOP bound."""
    run_gpu_bench = dev_tool("benchmarks.gpu").run_gpu_bench

    result = run_gpu_bench(
        cli_settings(),
        n=tweets,
        repeat=repeat,
        compile_model=compile_model,
        pipeline_tweets=pipeline_tweets,
        peak=peak_tflops,
        say=say,
    )
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table(
        title=f"{result['model']} on {result['device']}, {result['tweets']} tweets of {result['mean_tokens']:.1f} "
        f"tokens on average, best of {result['repeat']}"
    )
    for col in ("row", "tweets/s", "TFLOP/s", "share of bf16 peak"):
        table.add_column(col)
    for row in result["rows"]:
        share = row["share_of_bf16_peak"]
        table.add_row(
            row["name"], f"{row['tweets_per_s']:.0f}", f"{row['tflops']:.2f}", f"{share:.1%}" if share else ""
        )
    console.print(table)


@app.command("replay")
def bench_replay(
    tweets: Annotated[int, typer.Option(help="Tweets to measure (after a warm-up).")] = 20000,
    scorer: Annotated[str, typer.Option(help="rnn, transformer, vader or an artifact path.")] = "rnn",
    backlog: Annotated[
        bool,
        typer.Option(help="Produce the tweets first, then time only the stream draining them (its capacity)."),
    ] = False,
    source: Annotated[
        str | None, typer.Option(help="Kafka source of the tone stream: python or native [env: TONE_KAFKA_SOURCE]")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Produce at this many tweets/s (default: flat out).")] = None,
    trigger: Annotated[float, typer.Option(help="Seconds between micro-batches.")] = 0.5,
    warmup: Annotated[int, typer.Option(help="Tweets sent first and not measured.")] = 2000,
    max_tasks: Annotated[
        int | None,
        typer.Option(help="Tasks per micro-batch (default: one per core; 0: one per Kafka partition)."),
    ] = None,
    max_per_trigger: Annotated[
        list[int] | None,
        typer.Option(
            "--max-per-trigger",
            help="Records per micro-batch (0: all available); repeat it to run the tone stream once per value "
            "[env: TONE_MAX_PER_TRIGGER]",
        ),
    ] = None,
    guarantees: Annotated[
        list[str] | None,
        typer.Option(
            "--guarantee",
            help="Output guarantees to run the tone stream with, each once per --max-per-trigger (default: "
            "exactly_once then at_least_once) [env: TONE_OUTPUT_GUARANTEE]",
        ),
    ] = None,
    langs: Annotated[
        list[str] | None,
        typer.Option(
            "--lang",
            help="declared (the tweets declare en) or detected (they declare nothing: the stream detects each one's "
            "language); repeat it to run the tone stream once per value, e.g. declared detected detected declared "
            "for an ABBA of detection's cost (default: declared)",
        ),
    ] = None,
    dedupe: Annotated[
        list[str] | None,
        typer.Option(
            "--dedupe",
            help="on (TONE_DEDUPE_HORIZON_S as set) or off (0); repeat it to run the tone stream once per value, e.g. "
            "off on on off for an ABBA of dedupe's cost (default: on)",
        ),
    ] = None,
    shadows: Annotated[
        list[str] | None,
        typer.Option(
            "--shadow",
            help="none or a scorer spec the stream also scores every tweet with, in shadow (TONE_SHADOW_SCORER, "
            "sample 1); repeat it to run the tone stream once per value, e.g. none vader vader none for an ABBA of "
            "shadowing's cost (default: none)",
        ),
    ] = None,
    tag_runs: Annotated[
        list[str] | None,
        typer.Option(
            "--tags",
            help="on or off (TONE_TAGS: count each tweet for its tags and the stream's timeline); repeat it to run the "
            "tone stream once per value, e.g. off on on off for an ABBA of the conversation's cost (default: "
            "TONE_TAGS as set)",
        ),
    ] = None,
    tagged_share: Annotated[
        float,
        typer.Option(
            "--tagged-share",
            min=0.0,
            max=1.0,
            help="Add 1-3 synthetic tags (a Zipf pool of 2,000) to this share of the texts, for a feed denser in tags "
            "than the rated tweets' own (10.4% of them carry one) [default: 0]",
        ),
    ] = 0.0,
    reference: Annotated[
        bool,
        typer.Option(
            help="Also run Spark's predict_batch_udf pattern with the same model, on the project's Kafka source and on "
            "Spark's own, and compare."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whole-path replay on the running stack: sustained tweets/s, produce->Redis latency, time per stage."""
    replay = dev_tool("benchmarks.replay")
    from model_training.defaults import ensure_default_rnn

    settings = cli_settings()
    if scorer == "rnn":
        ensure_default_rnn(settings, say=say)

    options: dict[str, Any] = {
        "tweets": tweets,
        "scorer": scorer,
        "backlog": backlog,
        "rate": rate,
        "trigger_seconds": trigger,
        "warmup": warmup,
        "say": say,
    }
    limits = max_per_trigger or [settings.max_per_trigger]
    options["max_per_trigger"] = limits[0]
    for hint, values in (("--dedupe", dedupe), ("--tags", tag_runs)):
        for value in values or []:
            if value not in ("on", "off"):
                msg = f"{value!r}: use on or off"
                raise typer.BadParameter(msg, param_hint=hint)
    tag_values: list[str | None] = [*(tag_runs or [])] or [None]
    runs = [
        (t, sh, d, *run)
        for t in tag_values
        for sh in shadows or ["none"]
        for d in dedupe or ["on"]
        for run in _replay_runs(replay, guarantees, limits, langs)
    ]
    results: list[dict[str, Any]] = []
    for t, sh, d, g, limit, lang in runs:
        row = replay.run_replay_bench(
            settings,
            pipeline=replay.TONE,
            source=source,
            max_tasks=max_tasks,
            guarantee=g,
            lang=lang,
            dedupe=d == "on",
            shadow=sh,
            tags=t,
            tagged_share=tagged_share,
            **(options | {"max_per_trigger": limit}),
        )
        results.append(row if not results else row | {"vs_first": row["tweets_per_s"] / results[0]["tweets_per_s"]})
    _add_scorer_share(results, replay.scorer_alone(settings, scorer, say=say))
    if reference:
        for pipeline in (replay.REFERENCE, replay.NATIVE_REFERENCE):
            results.append(replay.run_replay_bench(settings, pipeline=pipeline, **options))
        results[0]["vs_reference"] = {
            r["pipeline"]: results[0]["tweets_per_s"] / r["tweets_per_s"]
            for r in results
            if r["pipeline"] != replay.TONE
        }
    if as_json:
        console.print_json(json.dumps(results))
        return
    for result in results:
        _print_replay_row(result, backlog=backlog)
    for result in results[1:]:
        if "vs_first" in result:
            this, first = _run_label(result), _run_label(results[0])
            console.print(f"{this} vs {first}: {result['vs_first']:.2f}x", highlight=False)
    _print_overhead(results)
    _print_detection_cost(results)
    _print_dedupe_cost(results)
    _print_shadow_cost(results, replay.TONE)
    _print_tags_cost(results)
    _print_scorer_share(results)
    for name, ratio in results[0].get("vs_reference", {}).items():
        console.print(f"tone stream vs {name}: {ratio:.2f}x", highlight=False)


def _replay_runs(
    replay: Any, guarantees: list[str] | None, limits: list[int], langs: list[str] | None
) -> list[tuple[str, int, str]]:
    """The tone stream runs asked for: each --lang, then each --guarantee, then each --max-per-trigger."""
    for g in guarantees or []:
        if g not in ("exactly_once", "at_least_once"):
            msg = f"{g!r}: use exactly_once or at_least_once"
            raise typer.BadParameter(msg, param_hint="--guarantee")
    for lang in langs or []:
        if lang not in replay.LANGS:
            msg = f"{lang!r}: use {' or '.join(replay.LANGS)}"
            raise typer.BadParameter(msg, param_hint="--lang")
    default_guarantees = ["exactly_once"] if langs else ["exactly_once", "at_least_once"]
    return [
        (g, limit, lang)
        for lang in langs or [replay.DECLARED]
        for g in guarantees or default_guarantees
        for limit in limits
    ]


def _print_replay_row(result: dict[str, Any], *, backlog: bool) -> None:
    """One pipeline's replay figures: rate, latency, task time per stage, and Spark's own time per batch."""
    from benchmarks import replay

    lat = result["latency_s"]
    stage = ", ".join(f"{k.removesuffix('_s')} {v:.2f}s" for k, v in result["stage_task_s"].items())
    if result["pipeline"] != replay.TONE:
        stage = "n/a (one Spark plan)"
    how = "backlog drained" if backlog else f"rate {result['rate'] or 'max'}"
    console.print(
        f"[{result['pipeline']}, {result['source']} source, {result['guarantee']}, "
        f"max {result['max_per_trigger'] or 'all'}/batch] "
        f"{result['tweets']} tweets, scorer {result['scorer']}, {how}: {result['tweets_per_s']:.0f} tweets/s over "
        f"{result['wall_s']:.1f}s in {result['batches']} batches; "
        f"produce->Redis p50 {lat['p50']:.2f}s p95 {lat['p95']:.2f}s p99 {lat['p99']:.2f}s; "
        f"task time: {stage}; batch wall {result['batch_wall_s']:.2f}s",
        highlight=False,
        markup=False,  # the "[tone stream]" tag is text, not rich markup
    )
    if spark := result.get("spark_ms"):
        console.print(f"  {_spark_line(spark)}", highlight=False, markup=False)


def _add_scorer_share(results: list[dict[str, Any]], alone: dict[str, Any]) -> None:
    """Give each tone stream row the scorer's own rate and its share of it (``vs_scorer``)."""
    for row in results:
        row["scorer_alone"] = alone
        row["vs_scorer"] = row["tweets_per_s"] / alone["tweets_per_s"]


def _print_scorer_share(results: list[dict[str, Any]]) -> None:
    """Each tone stream row's rate as a share of the scorer's own rate on the same tweets: the limit here."""
    alone = results[0]["scorer_alone"]
    console.print(
        f"the scorer alone ({alone['version']}, same {alone['tweets']} tweets, {alone['threads']} threads, best of 3): "
        f"{alone['tweets_per_s']:.0f} tweets/s; the tone stream reaches "
        + ", ".join(f"{r['vs_scorer']:.2f}" for r in results if "vs_scorer" in r)
        + " of it",
        highlight=False,
    )


def _print_detection_cost(results: list[dict[str, Any]]) -> None:
    """Detected against declared languages: the ratio of the medians of tweets/s (run them ABBA, see below)."""
    detected = [r["tweets_per_s"] for r in results if r.get("lang") == "detected"]
    declared = [r["tweets_per_s"] for r in results if r.get("lang") == "declared" and "guarantee" in r]
    if detected and declared:
        ratio = statistics.median(detected) / statistics.median(declared)
        console.print(
            f"languages detected vs declared (medians of {len(detected)} and {len(declared)} runs): "
            f"{ratio:.2f}x tweets/s",
            highlight=False,
        )


def _run_label(row: dict[str, Any]) -> str:
    """What a tone stream row ran with: guarantee, batch limit, and languages or dedupe where not the default."""
    label = f"{row['guarantee']}, max {row['max_per_trigger'] or 'all'}/batch"
    if row.get("lang") == "detected":
        label += ", languages detected"
    label += ", dedupe off" if row.get("dedupe_horizon_s") == 0 else ""
    if row.get("tagged_texts"):
        label += ", tags on" if row.get("tags") else ", tags off"
    return label + (f", shadow {row['shadow']}" if row.get("shadow") not in (None, "none") else "")


def _print_shadow_cost(results: list[dict[str, Any]], tone: str) -> None:
    """Shadowing against none: the extra wall time beside the candidate's own scoring time (run them ABBA).

    The candidate's own time is its task time over the tasks that ran in parallel; what the stream adds beyond it is
    the cost of shadowing itself (the comparison, the evidence in the Redis step, the larger scored records).
    """
    off = [r for r in results if r.get("shadow") == "none" and r["pipeline"] == tone]
    for spec in sorted({r["shadow"] for r in results if r.get("shadow") not in (None, "none")}):
        on = [r for r in results if r.get("shadow") == spec]
        if not off or not on:
            continue
        wall_off = statistics.median(r["wall_s"] for r in off)
        wall_on = statistics.median(r["wall_s"] for r in on)
        own = statistics.median(r["stage_task_s"]["shadow_s"] / max(1, r["max_tasks"] or 1) for r in on)
        beyond = (wall_on - wall_off - own) / wall_off
        console.print(
            f"shadow {spec} vs none (medians of {len(on)} and {len(off)} runs): {wall_off / wall_on:.2f}x tweets/s; "
            f"extra wall {wall_on - wall_off:.2f} s, the candidate's own scoring {own:.2f} s (task time / tasks), "
            f"beyond it {beyond:+.1%} of the wall without shadow",
            highlight=False,
        )


def _print_tags_cost(results: list[dict[str, Any]]) -> None:
    """Tags and timeline on against off, on the same tagged texts (run them ABBA: --tags off on on off)."""
    on = [r["tweets_per_s"] for r in results if r.get("tagged_texts") and r.get("tags")]
    off = [r["tweets_per_s"] for r in results if r.get("tagged_texts") and not r.get("tags")]
    if on and off:
        ratio = statistics.median(on) / statistics.median(off)
        share = max(r.get("tagged_share") or 0 for r in results)
        texts = f"{share:.0%} of the texts with 1-3 more tags" if share else "the rated tweets' own tags"
        console.print(
            f"tags on vs off (medians of {len(on)} and {len(off)} runs, {texts}): {ratio:.2f}x tweets/s "
            f"(the conversation costs {1 - ratio:+.1%} of the drain)",
            highlight=False,
        )


def _print_dedupe_cost(results: list[dict[str, Any]]) -> None:
    """Dedupe on against off: the ratio of the medians of tweets/s (run them ABBA: --dedupe off on on off)."""
    on = [r["tweets_per_s"] for r in results if r.get("dedupe_horizon_s")]
    off = [r["tweets_per_s"] for r in results if r.get("dedupe_horizon_s") == 0]
    if on and off:
        ratio = statistics.median(on) / statistics.median(off)
        console.print(
            f"dedupe on vs off (medians of {len(on)} and {len(off)} runs): {ratio:.2f}x tweets/s", highlight=False
        )


def _print_overhead(results: list[dict[str, Any]]) -> None:
    """exactly_once against at_least_once at the same batch limit: ratios of the medians of tweets/s and p95.

    Repeat the guarantees (``--guarantee exactly_once --guarantee at_least_once --guarantee at_least_once
    --guarantee exactly_once``) on a noisy machine: the median of each side is compared, and the ABBA order cancels
    a drift over the run (measured here: the second of two identical runs scored up to 37% slower).
    """
    tone_rows = [r for r in results if "guarantee" in r and r["pipeline"] == results[0]["pipeline"]]
    for limit in dict.fromkeys(r["max_per_trigger"] for r in tone_rows):
        eo = [r for r in tone_rows if r["max_per_trigger"] == limit and r["guarantee"] == "exactly_once"]
        alo = [r for r in tone_rows if r["max_per_trigger"] == limit and r["guarantee"] == "at_least_once"]
        if not eo or not alo:
            continue

        def ratio(figure: Callable[[dict[str, Any]], float], eo: list[Any] = eo, alo: list[Any] = alo) -> float:
            return statistics.median(map(figure, eo)) / statistics.median(map(figure, alo))

        rate, p95 = ratio(lambda r: r["tweets_per_s"]), ratio(lambda r: r["latency_s"]["p95"])
        runs = f", medians of {len(eo)} and {len(alo)} runs" if len(eo) + len(alo) > 2 else ""  # noqa: PLR2004
        console.print(
            f"exactly_once vs at_least_once (max {limit or 'all'}/batch{runs}): {rate:.2f}x tweets/s, {p95:.2f}x p95",
            highlight=False,
        )


@app.command("api")
def bench_api(
    users: Annotated[int, typer.Option(help="Users seeded in Redis (under a prefix of the bench's own).")] = 60_000,
    tweets: Annotated[int, typer.Option(help="Tweets per seeded user (their recent list).")] = 3,
    workers: Annotated[
        list[int] | None, typer.Option("--workers", help="TONE_API_WORKERS to run (repeatable; default 1 and 2).")
    ] = None,
    connections: Annotated[int, typer.Option(help="wrk's open connections.")] = 32,
    seconds: Annotated[int, typer.Option(help="How long wrk runs per server.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Lookups/s through `tone serve` under wrk (random seeded users), p50/p99, and the CPU wrk and the server used.

    Against TONE_REDIS_URL, under a key prefix of its own (removed afterwards). Needs wrk (apt-get install wrk).
    """
    run_api_bench = dev_tool("benchmarks.api").run_api_bench

    rows = run_api_bench(
        cli_settings(),
        users=users,
        tweets=tweets,
        workers=workers or [1, 2],
        connections=connections,
        seconds=seconds,
        say=say,
    )
    if as_json:
        console.print_json(json.dumps(rows))
        return
    for r in rows:
        errors = r["non_2xx"] + r["socket_errors"]
        console.print(
            f"workers {r['workers']}: {r['lookups_per_s']:,} lookups/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
            f"{errors} errors ({r['connections']} connections, {r['seconds']} s); CPU of the {r['cores']} cores: "
            f"wrk {100 * r['wrk_cpu_share']:.0f}%, tone serve {100 * r['server_cpu_share']:.0f}%",
            highlight=False,
        )
    for r in rows[1:]:
        console.print(f"workers {r['workers']} vs workers {rows[0]['workers']}: {r['vs_first']:.2f}x", highlight=False)


@app.command("langid")
def bench_langid(
    repeat: Annotated[int, typer.Option(help="Time the detector this many times and keep the best.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The stream's language detector: share right per language on short texts, English tweets kept, tweets/s."""
    run_langid_bench = dev_tool("benchmarks.langid").run_langid_bench

    result = run_langid_bench(cli_settings(), repeat=repeat, say=say)
    if as_json:
        console.print_json(json.dumps(result))
        return
    first = result["rows"][0]
    table = Table(title=f"language detection, {result['texts']} texts, {result['candidates']} candidate languages")
    table.add_column("language")
    table.add_column("texts")
    for row in result["rows"]:
        table.add_column(f"right: {row['name']}")
    for lang, figures in first["by_language"].items():
        table.add_row(lang, str(figures["n"]), *(f"{r['by_language'][lang]['right']:.1%}" for r in result["rows"]))
    console.print(table)
    for row in result["rows"]:
        worst = f"{row['worst'][0]} {row['worst'][1]:.1%}" if row["worst"] else "-"
        console.print(
            f"{row['name']}: other languages right {row['other_right']:.1%}, read as English {row['other_as_en']:.1%} "
            f"(worst of >= 40 texts: {worst}); English tweets read as English: VADER "
            f"{row['en_right']['vader_tweets']:.1%}, CrowdFlower {row['en_right']['crowdflower_tweets']:.1%}; "
            f"{row['tweets_per_s']:.0f} texts/s on one core",
            highlight=False,
        )
        long = row["four_words"]
        worst = f"{long['worst'][0]} {long['worst'][1]:.1%}" if long["worst"] else "-"
        console.print(
            f"  on the {long['texts']} other-language lines of 4+ words (6+ characters in ja, zh, th): right "
            f"{long['other_right']:.1%}, read as English {long['other_as_en']:.1%} (worst: {worst})",
            highlight=False,
        )


@app.command("shifts")
def bench_shifts(
    runs: Annotated[int, typer.Option(help="Replays of three hours per row.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The shift detector's false alarms on stationary replays and delay on injected shifts (TONE_SHIFT_*)."""
    bench = dev_tool("benchmarks.shifts")
    from tone.aggregates.timeline import shift_config

    settings = cli_settings()
    config = shift_config(settings)
    rows = bench.run_shift_bench(config, runs=runs)
    if as_json:
        console.print_json(json.dumps({"config": config.__dict__, "rows": rows}))
        return
    console.print(
        f"threshold {config.threshold}, delta {config.delta}, baseline {config.baseline_minutes} min; {runs} replays "
        "of 180 minutes per row, the turn at minute 90",
        highlight=False,
    )
    table = Table("tweets/min", "negative share", "jump", "false alarms /1000 tag-h", "found <=10 min",
                  "median delay", "p95 delay", "alarms before")  # fmt: skip
    for r in rows:
        if r["jump"] == 0:
            table.add_row(str(r["rate"]), f"{r['base']:.1f}", "none", f"{r['false_alarms_per_1000_tag_hours']:.2f}",
                          "", "", "", "")  # fmt: skip
        else:
            table.add_row(str(r["rate"]), f"{r['base']:.1f}", f"+{r['jump']:.1f}", "",
                          f"{100 * r['detected_within_10_min']:.1f}%", f"{r['median_delay_min']} min",
                          f"{r['p95_delay_min']} min", str(r["alarms_before_the_turn"]))  # fmt: skip
    console.print(table)


@app.command("store")
def bench_store(
    users: Annotated[int, typer.Option(help="New users (one tweet each) counted per step size.")] = 25_000,
    steps: Annotated[list[int] | None, typer.Option("--step", help="Tweets per atomic Redis step to compare.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What a lookup waits behind the stream's Redis writes, per step size, and bytes and keys per user.

    Against TONE_REDIS_URL, under a key prefix of its own (removed afterwards).
    """
    run_store_bench = dev_tool("benchmarks.store").run_store_bench

    result = run_store_bench(cli_settings(), users, steps or [users, 5000, 1000, 250], say=say)
    if as_json:
        console.print_json(json.dumps(result))
        return
    table = Table(title=f"counting {result['users']:,} new users' tweets in Redis, lookups beside")
    for col in ("step", "atomic steps", "seconds", "users/s", "lookups", "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right")
    for r in result["rows"]:
        table.add_row(
            *(
                str(r[k])
                for k in (
                    "step",
                    "atomic_steps",
                    "seconds",
                    "users_per_s",
                    "lookups",
                    "lookup_p50_ms",
                    "lookup_p99_ms",
                    "lookup_max_ms",
                )
            )
        )
    console.print(table)
    console.print(
        f"per user (MEMORY USAGE, {result['keys_per_user']} keys): {result['bytes_per_user_1_tweet']} bytes with one "
        f"tweet, {result['bytes_per_user_full_recent']} with a full recent list ({result['recent_tweets']} tweets)",
        highlight=False,
    )
    if "bytes_per_tag_1_tweet" in result:
        console.print(
            f"per tag seen once (MEMORY USAGE, {result['keys_per_tag']} keys): {result['bytes_per_tag_1_tweet']} B, "
            f"+{result['bytes_per_tag_in_top_sets']} in the tags' top sets: {result['gib_per_million_tags']} GiB per "
            "1M distinct tags of one tweet each, for TONE_TAG_PROBATION_S after their tweet (then they expire)",
            highlight=False,
        )


@app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(help="How long to produce.")] = 10.0,
    rate: Annotated[float, typer.Option(help="Tweets per second.")] = 300.0,
    scorer: Annotated[str, typer.Option(help="rnn, transformer, vader or an artifact path.")] = "rnn",
    trigger: Annotated[float, typer.Option(help="Seconds between micro-batches.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The stream at a steady rate: RSS of the driver, its JVM and the Python workers, and growth per batch.

    Growth is measured over the second half of the batches, once the bounded histories have filled.
    """
    run_soak_bench = dev_tool("benchmarks.soak").run_soak_bench
    from model_training.defaults import ensure_default_rnn

    settings = cli_settings()
    if scorer == "rnn":
        ensure_default_rnn(settings, say=say)
    result = run_soak_bench(settings, minutes=minutes, rate=rate, scorer=scorer, trigger_seconds=trigger, say=say)
    if as_json:
        console.print_json(json.dumps(result))
        return
    mib = 2**20
    first, settled, last = result["first"], result["settled_first"], result["last"]
    console.print(
        f"{result['records']:,} records in {result['batches']} batches ({result['minutes']:g} min at "
        f"{result['rate']:.0f}/s); growth per batch over the last {result['measured_batches']} batches:",
        highlight=False,
    )
    for kind in ("driver", "jvm", "workers"):
        console.print(
            f"  {kind:8s} {result['growth_bytes_per_batch'][kind] / 1024:+8.2f} KiB/batch   "
            f"RSS {first[kind] / mib:.1f} -> {last[kind] / mib:.1f} MiB (settled {settled[kind] / mib:.1f})",
            highlight=False,
        )
    if result["jvm_heap_growth_bytes_per_batch"] is not None:
        heaps = ", ".join(f"batch {h['batch']}: {h['bytes'] / mib:.1f} MiB" for h in result["jvm_heap_after_full_gc"])
        console.print(
            f"  JVM heap in use after a full GC: {heaps}; "
            f"{result['jvm_heap_growth_bytes_per_batch'] / 1024:+.2f} KiB/batch",
            highlight=False,
        )


def _spark_line(spark: dict[str, float]) -> str:
    """Spark's own timing of a batch (medians over the measured batches), for the replay bench's table."""
    from benchmarks.replay import SPARK_PHASES

    phases = ", ".join(f"{p} {spark[p]:.0f}" for p in SPARK_PHASES if p in spark)
    whole = spark.get("triggerExecution")
    head = f"whole batch {whole:.0f}, outside foreachBatch {spark.get('outside_addBatch', 0):.0f}; " if whole else ""
    return f"Spark per batch, median ms: {head}{phases}"
