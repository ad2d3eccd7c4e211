"""boto3 sessions and clients from the settings: real AWS when no endpoint is set, moto (the local stack) when it is.

boto3 is imported inside the functions: it costs ~0.3 s and only the registry and the tuning commands need it.
"""

from __future__ import annotations

import os
from typing import Any

from tone.settings import Settings

# moto accepts any credentials; these are used only against a local endpoint when none are configured, so that a
# fresh machine with no ~/.aws can talk to the local stack. Real AWS always uses boto3's normal credential chain.
LOCAL_CREDENTIALS = {"aws_access_key_id": "tone-local", "aws_secret_access_key": "tone-local"}


def boto_session(settings: Settings) -> Any:
    """A boto3 Session in the configured region (with local credentials when pointed at a local endpoint)."""
    import boto3

    kwargs: dict[str, Any] = {"region_name": settings.aws_region}
    if settings.aws_endpoint_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        kwargs |= LOCAL_CREDENTIALS
    return boto3.Session(**kwargs)


def client(settings: Settings, service: str) -> Any:
    """A boto3 client for ``service`` at the configured endpoint."""
    return boto_session(settings).client(service, endpoint_url=settings.aws_endpoint_url)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    if not uri.startswith("s3://"):
        msg = f"not an s3:// URI: {uri!r}"
        raise ValueError(msg)
    bucket, _, key = uri[5:].partition("/")
    return bucket, key.strip("/")


def ensure_bucket(settings: Settings, bucket: str) -> None:
    """Create ``bucket`` unless it exists (needed on moto, whose buckets vanish with the process)."""
    s3 = client(settings, "s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if settings.aws_region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws_region}
        s3.create_bucket(**kwargs)
