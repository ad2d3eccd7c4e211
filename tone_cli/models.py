"""`tone models list|show|publish|export-onnx|shadow|compare|approve|rollback`: the model registry and its evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tone_cli._common import cli_settings, console, say

app = typer.Typer(
    help="The model registry (TONE_REGISTRY_URI: a directory or s3://bucket/prefix).", no_args_is_help=True
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every registered version with its status and metrics, newest first."""
    from tone.registry import Registry

    settings = cli_settings()
    versions = Registry.from_settings(settings).versions()
    if as_json:
        console.print_json(json.dumps([{"version": v.version, "status": v.status, **v.registration} for v in versions]))
        return
    table = Table(title=f"registry {settings.registry_uri}")
    for col in ("version", "status", "test_macro_f1", "val_macro_f1", "created", "source"):
        table.add_column(col, overflow="fold")
    colors = {"approved": "green", "candidate": "yellow", "archived": "dim"}
    for v in versions:
        src = v.registration.get("source", {})
        table.add_row(
            v.version,
            f"[{colors[v.status]}]{v.status}[/]",
            _fmt(v.metrics.get("test_macro_f1", "")),
            _fmt(v.metrics.get("val_macro_f1", "")),
            v.registration.get("created_at", ""),
            " ".join(f"{k}={src[k]}" for k in ("backend", "study", "trial", "tuning_job") if k in src),
        )
    console.print(table)


@app.command("show")
def show(version: Annotated[str, typer.Argument(help="A version from `tone models list`.")]) -> None:
    """One version's registration (metrics, params, file checksums, source) and status, as JSON."""
    from tone.registry import Registry

    v = Registry.from_settings(cli_settings()).get(version)
    console.print_json(json.dumps({"status": v.status, **v.registration}))


@app.command("publish")
def publish(
    path: Annotated[Path, typer.Argument(help="A model artifact directory (e.g. from `tone train --out`).")],
    onnx: Annotated[
        bool, typer.Option(help="A transformer without an ONNX export gets one first (a new version, same weights).")
    ] = True,
) -> None:
    """Register a trained artifact as a candidate (checksums verified first)."""
    import tempfile

    from tone.registry import Registry
    from tone.scoring import artifacts

    settings = cli_settings()
    manifest = artifacts.read_manifest(path)  # publish (or add_onnx) verifies every checksum
    with tempfile.TemporaryDirectory(prefix="tone-publish-") as tmp:
        artifact = path
        if onnx and manifest["kind"] == "transformer" and "onnx" not in manifest:
            from model_training.onnx_export import add_onnx

            artifact = Path(tmp) / "artifact"
            add_onnx(path, artifact, settings, say=say)
        v = Registry.from_settings(settings).publish(artifact, source={"backend": "manual", "path": str(path)})
    console.print(f"{v.version}: {v.status}")


@app.command("export-onnx")
def export_onnx(
    path: Annotated[Path, typer.Argument(help="A transformer artifact directory.")],
    out: Annotated[Path, typer.Option(help="A new directory for the artifact with its ONNX export.")],
    data: Annotated[
        str | None, typer.Option(help="Labelled data whose validation split guards int8 (default: the training data).")
    ] = None,
    int8: Annotated[bool, typer.Option(help="Try an int8 graph (kept only if its accuracy guard passes).")] = True,
) -> None:
    """Add an ONNX Runtime export to a transformer artifact made without one (same weights, new version)."""
    from model_training.onnx_export import add_onnx

    manifest = add_onnx(path, out, cli_settings(), data=data, int8=int8, say=say)
    console.print(f"{manifest['version']}: {out}")


@app.command("approve")
def approve(
    version: Annotated[str, typer.Argument(help="The candidate to promote.")],
    force: Annotated[bool, typer.Option(help="Skip the shadow and metric gates (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why, with --force (recorded in the registry).")] = None,
    query: Annotated[str, typer.Option(help="The stream whose shadow evidence counts (tone stream --query).")] = "tone",
    margin: Annotated[float | None, typer.Option(help="Required improvement [env: TONE_APPROVE_MARGIN].")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric compared [env: TONE_APPROVE_METRIC].")] = None,
) -> None:
    """Approve a candidate that earned it: shadow evidence on live traffic, then its offline metric.

    Shows the candidate's shadow evidence against the approved model (any live model before the first approval)
    beside its metric; running streams that follow the registry swap it in.
    """
    from tone.aggregates.factory import open_store
    from tone.aggregates.shadow import pair_evidence
    from tone.registry import Registry

    settings = cli_settings()
    registry = Registry.from_settings(settings)
    try:
        evidence = pair_evidence(open_store(settings).shadow_evidence(query), version, registry.approved_version())
    except Exception as exc:
        if not force:
            raise
        say(f"shadow evidence not read ({exc}); --force approves without it")
        evidence = None
    line = registry.approve(version, force=force, reason=reason, margin=margin, metric=metric, evidence=evidence)
    console.print(line, highlight=False)


@app.command("rollback")
def rollback(
    to: Annotated[str | None, typer.Option(help="Version to approve (default: the previously approved one).")] = None,
) -> None:
    """Re-approve the previous (or a given) version and archive the current one; no metric gate."""
    from tone.registry import Registry

    line = Registry.from_settings(cli_settings()).rollback(to)
    console.print(line, highlight=False)


@app.command("shadow")
def shadow(
    version: Annotated[str | None, typer.Argument(help="The candidate to score in shadow.")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop shadowing (no candidate).")] = False,
) -> None:
    """Score a candidate beside the live model in running streams that follow the registry (docs/training.md)."""
    from tone.registry import Registry

    if (version is None) == (not stop):
        msg = "give a VERSION, or --stop"
        raise typer.BadParameter(msg)
    line = Registry.from_settings(cli_settings()).set_shadow(None if stop else version)
    console.print(line, highlight=False)


def _stream_pair(settings: Any, query: str) -> tuple[str | None, str | None]:
    """The live model and shadow candidate versions the stream ``query`` ran last (from its health record)."""
    from tone.aggregates.factory import open_store

    health = open_store(settings).health(query) or {}
    shadow = json.loads(health.get("shadow") or "{}")
    return shadow.get("live_version") or health.get("model_version"), shadow.get("candidate_version")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


@app.command("compare")
def compare(
    live: Annotated[str | None, typer.Argument(help="The live model's version (default: the stream's).")] = None,
    candidate: Annotated[str | None, typer.Argument(help="The candidate's version (default: the stream's).")] = None,
    query: Annotated[str, typer.Option(help="The stream's query name (tone stream --query).")] = "tone",
    flipped: Annotated[int, typer.Option(help="Flipped tweets to show (text output).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The shadow evidence of a candidate against the live model: agreement, label flips, by language."""
    from tone.aggregates.factory import open_store
    from tone.aggregates.shadow import pair_evidence
    from tone.errors import ToneError

    settings = cli_settings()
    evidence = open_store(settings).shadow_evidence(query)
    if (live is None) != (candidate is None):
        msg = "give both LIVE and CANDIDATE, or neither (the stream's pair)"
        raise typer.BadParameter(msg)
    if live is None:
        live, candidate = _stream_pair(settings, query)
        if candidate is None and evidence:
            live, candidate = evidence[0]["live"], evidence[0]["candidate"]
    row = pair_evidence(evidence, candidate, live) if candidate else None
    if row is None:
        pairs = ", ".join(f"{e['live']} -> {e['candidate']} ({e['n']})" for e in evidence) or "none"
        msg = (
            f"no shadow evidence for {live or '?'} -> {candidate or '?'} in stream {query!r} (pairs with evidence: "
            f"{pairs}). Shadow a candidate: tone models shadow VERSION, or TONE_SHADOW_SCORER=SPEC tone stream"
        )
        raise ToneError(msg)
    if as_json:
        console.print_json(json.dumps(row))
        return
    agreement = row["agreement"]
    console.print(
        f"{row['live']} (live) vs {row['candidate']} (shadow): {row['n']} tweets, "
        f"{_share(agreement)} agree, mean |polarity change| "
        f"{_fmt(row['mean_abs_polarity_change'])}, ms per tweet live {_fmt(row['live_ms_per_tweet'])} / shadow "
        f"{_fmt(row['shadow_ms_per_tweet'])}",
        highlight=False,
    )
    labels = sorted({label for r in row["flips"].values() for label in r} | set(row["flips"]))
    table = Table(title="live label (rows) -> candidate label (columns)")
    table.add_column("live \\ candidate")
    for label in labels:
        table.add_column(label, justify="right")
    for a in labels:
        table.add_row(a, *(str(row["flips"].get(a, {}).get(b, 0)) for b in labels))
    console.print(table)
    langs = ", ".join(
        f"{lang} {v['n']} ({_share(v['agreement'])})"
        for lang, v in sorted(row["languages"].items(), key=lambda kv: -kv[1]["n"])
    )
    console.print(f"by language (tweets, agreement): {langs}", highlight=False)
    for item in row["flipped"][:flipped]:
        console.print(f"  {item['live']} -> {item['shadow']}  [{item['lang']}] {item['text']!r}", highlight=False)
