"""Media in object storage: ``s3://BUCKET/PREFIX`` listed with boto3, and each object read over
a presigned HTTPS URL, so that FFmpeg decodes it with HTTP range requests where the work runs:
no local copy, and the node that reads needs no credentials (the URL carries a signature).

Credentials come from where boto3 looks (``AWS_ACCESS_KEY_ID``..., ``AWS_PROFILE``, an instance
role); an S3-compatible store (MinIO, Ceph, moto) is named by ``endpoint`` or, as boto3 reads
them, ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

PRESIGNED_FOR_S = 12 * 3600
"""A presigned URL outlives the longest decode of one object (12 h of video at 1x)."""
ENDPOINT_ENV = "VIDSCOPE_S3_ENDPOINT"


@dataclass(frozen=True, slots=True)
class S3Object:
    url: str
    """``s3://bucket/key``."""
    size: int
    etag: str

    @property
    def fingerprint(self) -> str:
        """Stable while the content is: the ETag is the object's content hash (per part for a
        multipart upload), so one upload found under two names is still one source."""
        return "s3-" + hashlib.blake2b(f"{self.etag}:{self.size}".encode(), digest_size=8).hexdigest()


def split(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; a ``ValueError`` for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"{url!r} is not an s3://BUCKET/PREFIX URL")
    return parts.netloc, parts.path.lstrip("/")


def client(endpoint: str | None = None):
    """A boto3 S3 client (boto3 is imported only when an s3:// input is named)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - a dependency of the package
        raise RuntimeError("s3:// inputs need boto3 (pip install boto3)") from None
    endpoint = endpoint or os.environ.get(ENDPOINT_ENV) or None
    return boto3.client("s3", endpoint_url=endpoint,
                        config=Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"}))


def list_objects(url: str, suffixes: frozenset[str], *, endpoint: str | None = None) -> list[S3Object]:
    """The objects under the prefix whose names end in one of ``suffixes`` (lower case), by key;
    or the one object the URL names exactly. Errors (no bucket, no access) as ``OSError``."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split(url)
    s3 = client(endpoint)
    found: list[S3Object] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key == prefix or os.path.splitext(key)[1].lower() in suffixes:
                    found.append(S3Object(f"s3://{bucket}/{key}", int(item["Size"]), item["ETag"].strip('"')))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise OSError(f"{url}: {error.get('Code', 'error')}: {error.get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise OSError(f"{url}: {exc}") from None
    exact = [o for o in found if o.url == url.rstrip("/")]
    return exact or sorted((o for o in found if os.path.splitext(o.url)[1].lower() in suffixes), key=lambda o: o.url)


def presign(url: str, *, endpoint: str | None = None, expires_s: int = PRESIGNED_FOR_S) -> str:
    """An HTTPS (or the endpoint's scheme) URL that reads the object, ranges included."""
    bucket, key = split(url)
    return client(endpoint).generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                                   ExpiresIn=expires_s)


def readable_url(uri: str, *, endpoint: str | None = None) -> str:
    """What FFmpeg opens for a source's URI: a presigned URL for ``s3://``, the URI otherwise."""
    return presign(uri, endpoint=endpoint) if uri.startswith("s3://") else uri
