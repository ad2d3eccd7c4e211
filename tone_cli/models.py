"""`tone models list|show|publish|export-onnx|approve|rollback`: the model registry (tone.registry) and exports."""

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
    force: Annotated[bool, typer.Option(help="Skip the metric gate.")] = False,
    margin: Annotated[float | None, typer.Option(help="Required improvement [env: TONE_APPROVE_MARGIN].")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric compared [env: TONE_APPROVE_METRIC].")] = None,
) -> None:
    """Approve a version if its metric beats the approved one's by the margin; running streams pick it up."""
    from tone.registry import Registry

    line = Registry.from_settings(cli_settings()).approve(version, force=force, margin=margin, metric=metric)
    console.print(line, highlight=False)


@app.command("rollback")
def rollback(
    to: Annotated[str | None, typer.Option(help="Version to approve (default: the previously approved one).")] = None,
) -> None:
    """Re-approve the previous (or a given) version and archive the current one; no metric gate."""
    from tone.registry import Registry

    line = Registry.from_settings(cli_settings()).rollback(to)
    console.print(line, highlight=False)
