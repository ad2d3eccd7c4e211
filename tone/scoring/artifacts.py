"""Model artifacts: a directory of safetensors weights, tokenizer files and a JSON manifest. No pickle anywhere.

``manifest.json`` records the kind, labels, the languages the model reads, model config, metrics, training
parameters and the sha256 of every other file; :func:`load` refuses an artifact whose files do not match. The
version covers the languages too, so a manifest edited to claim another language fails verification. A transformer
artifact is also a plain Hugging Face model directory (``from_pretrained`` works on it).

The version of an artifact is derived from its content (a hash over the file hashes), so the same weights always
carry the same version string.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tone.errors import ArtifactError
from tone.scoring.kinds import MODEL_KINDS as KINDS

if TYPE_CHECKING:
    pass

MANIFEST: Final = "manifest.json"
DEFAULT_LANGUAGES: Final = ("en",)
FORMAT: Final = 1
_CHUNK: Final = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _artifact_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def content_version(kind: str, files: dict[str, str], languages: Sequence[str] | None = None) -> str:
    """A short, stable version string from the file hashes and the languages: ``rnn-1a2b3c4d5e6f``.

    ``languages`` None: an artifact written before manifests recorded them (its version covers the files only).
    """
    text = "".join(f"{k}:{v}\n" for k, v in sorted(files.items()))
    if languages is not None:
        text += f"languages:{','.join(languages)}\n"
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def manifest_languages(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The languages a model reads, from its manifest.

    An artifact from before manifests recorded them reads English: every data set this project trains on is English.
    """
    languages = manifest.get("languages", DEFAULT_LANGUAGES)
    if not isinstance(languages, list | tuple) or not all(isinstance(x, str) and x for x in languages):
        msg = f"manifest of {manifest.get('version')}: languages must be a list of language codes, got {languages!r}"
        raise ArtifactError(msg)
    return tuple(languages)


def write_manifest(
    directory: Path, kind: str, labels: list[str], languages: Sequence[str] = DEFAULT_LANGUAGES, **extra: Any
) -> dict[str, Any]:
    """Hash every file in ``directory`` and write the manifest; returns it.

    ``languages``: ISO 639-1 codes of the languages the model reads (those of its training data).
    """
    if kind not in KINDS:
        msg = f"unknown artifact kind {kind!r}; expected one of {', '.join(KINDS)}"
        raise ArtifactError(msg)
    files = {p.relative_to(directory).as_posix(): sha256_file(p) for p in _artifact_files(directory)}
    languages = list(dict.fromkeys(languages))
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "version": content_version(kind, files, languages),
        "labels": list(labels),
        "languages": languages,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
        "files": files,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of an artifact directory, checked for shape (not yet for checksums)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        msg = f"{directory} is not a model artifact: no {MANIFEST}"
        raise ArtifactError(msg)
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path} is not valid JSON: {exc}"
        raise ArtifactError(msg) from None
    missing = [k for k in ("format", "kind", "version", "labels", "files") if k not in manifest]
    if missing:
        msg = f"{path} lacks {', '.join(missing)}"
        raise ArtifactError(msg)
    if manifest["format"] != FORMAT or manifest["kind"] not in KINDS:
        msg = f"{path}: unsupported format {manifest['format']!r} or kind {manifest['kind']!r}"
        raise ArtifactError(msg)
    return dict(manifest)


def verify(directory: Path) -> dict[str, Any]:
    """Check every file against the manifest (and that no file was added); return the manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    expected: dict[str, str] = manifest["files"]
    present = {p.relative_to(directory).as_posix() for p in _artifact_files(directory)}
    if missing := sorted(set(expected) - present):
        msg = f"artifact {directory} is incomplete: missing {', '.join(missing)}"
        raise ArtifactError(msg)
    if extra := sorted(present - set(expected)):
        msg = f"artifact {directory} holds files its manifest does not list: {', '.join(extra)}"
        raise ArtifactError(msg)
    for name, digest in expected.items():
        if sha256_file(directory / name) != digest:
            msg = f"artifact {directory} failed its checksum on {name}: the file was changed or corrupted"
            raise ArtifactError(msg)
    if content_version(manifest["kind"], expected, manifest.get("languages")) != manifest["version"]:
        msg = f"artifact {directory}: version {manifest['version']} does not match its files"
        raise ArtifactError(msg)
    return manifest


# -- SageMaker's model.tar.gz layout: the contents of SM_MODEL_DIR at the top level of the archive ---------------
def pack_model_tar(directory: Path, archive: Path) -> Path:
    """Pack an artifact directory into ``archive`` (gzip), files at the top level, no links."""
    directory, archive = Path(directory), Path(archive)
    verify(directory)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in [directory / MANIFEST, *_artifact_files(directory)]:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(directory).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    return archive


def _check_member(member: tarfile.TarInfo, target: Path) -> None:
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        msg = f"refusing archive: member {name!r} has an absolute path"
        raise ArtifactError(msg)
    if ".." in Path(name).parts:
        msg = f"refusing archive: member {name!r} climbs out with '..'"
        raise ArtifactError(msg)
    resolved = (target / name).resolve()
    if not resolved.is_relative_to(target):
        msg = f"refusing archive: member {name!r} would land outside {target}"
        raise ArtifactError(msg)
    if member.issym() or member.islnk():
        link = Path(member.linkname)
        base = resolved.parent if member.issym() else target
        if link.is_absolute() or not (base / link).resolve().is_relative_to(target):
            msg = f"refusing archive: link {name!r} -> {member.linkname!r} escapes the target directory"
            raise ArtifactError(msg)
    elif not (member.isfile() or member.isdir()):
        msg = f"refusing archive: member {name!r} is a device, FIFO or other special file"
        raise ArtifactError(msg)


def unpack_model_tar(archive: Path, target: Path) -> Path:
    """Extract a ``model.tar.gz`` into ``target`` after checking every member; nothing is written if one is bad."""
    target = Path(target).resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, target)
            target.mkdir(parents=True, exist_ok=True)
            # The 'data' filter repeats these checks inside tarfile itself (and drops set-uid bits).
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        msg = f"cannot read model archive {archive}: {exc}"
        raise ArtifactError(msg) from None
    return target
