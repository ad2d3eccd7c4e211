"""Byte storage for the registry's files: a local directory or an S3 prefix (real S3 or moto), one interface."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tone.errors import ToneError

if TYPE_CHECKING:
    from tone.settings import Settings


class RegistryError(ToneError):
    """A registry operation was refused (unknown version, approval gate not met, nothing to roll back to)."""


class Storage(Protocol):
    """Byte storage addressed by '/'-separated keys relative to the registry root."""

    uri: str

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""

    def write(self, key: str, data: bytes) -> None:
        """Create or replace an object."""

    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file."""

    def get_file(self, key: str, path: Path) -> None:
        """Download an object to a local file."""

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (recursively), relative to the root."""


class LocalStorage:
    """A directory on a local or mounted file system."""

    def __init__(self, root: Path) -> None:
        """Use ``root`` (created on first write)."""
        self.root = Path(root).expanduser()
        self.uri = str(self.root)

    def read(self, key: str) -> bytes | None:
        """Read a file, None if absent."""
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        """Write atomically (temp file + rename), so a reader never sees half an index."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        tmp.replace(path)

    def put_file(self, key: str, path: Path) -> None:
        """Copy a file in."""
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def get_file(self, key: str, path: Path) -> None:
        """Copy a file out."""
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / key, path)

    def keys(self, prefix: str) -> list[str]:
        """Files under the prefix directory."""
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())


class S3Storage:
    """An S3 prefix (real S3 or moto)."""

    def __init__(self, uri: str, settings: Settings) -> None:
        """Use ``s3://bucket/prefix`` with a client from the settings."""
        from tone.aws import client, ensure_bucket, split_s3_uri

        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = split_s3_uri(self.uri)
        self.s3 = client(settings, "s3")
        if settings.aws_endpoint_url:
            ensure_bucket(settings, self.bucket)  # a local endpoint (moto) starts with no buckets

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str) -> bytes | None:
        """GET an object, None on 404 (a missing bucket is an error that names it)."""
        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None
        except self.s3.exceptions.NoSuchBucket:
            msg = f"registry bucket {self.bucket!r} does not exist: create it or fix TONE_REGISTRY_URI"
            raise RegistryError(msg) from None

    def write(self, key: str, data: bytes) -> None:
        """PUT an object (a PUT is atomic on S3)."""
        self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        """Upload a file."""
        self.s3.upload_file(str(path), self.bucket, self._key(key))

    def get_file(self, key: str, path: Path) -> None:
        """Download a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.s3.download_file(self.bucket, self._key(key), str(path))

    def keys(self, prefix: str) -> list[str]:
        """List with pagination."""
        out = []
        start = len(self.prefix) + 1 if self.prefix else 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            out += [obj["Key"][start:] for obj in page.get("Contents", [])]
        return sorted(out)


def open_storage(uri: str, settings: Settings) -> Storage:
    """The storage backend for ``uri``."""
    if uri.startswith("s3://"):
        return S3Storage(uri, settings)
    return LocalStorage(Path(uri))
