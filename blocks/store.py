"""The artifact store behind ``store:`` URIs: a directory (the default) or S3-compatible object
storage shared by every machine that runs steps.

Each machine resolves ``store:<relative path>`` under its own *store root* (see
:mod:`blocks.manifest`). With a directory store that root is the store: every worker must see the same
directory (one machine, or a shared file system). With an object store the root is this machine's
cache of it: before a step, the inputs it lacks are downloaded from the bucket; after the step, its
output artifacts and result manifest are uploaded, so a worker on another machine (or the portal,
serving a download) finds them.

Configured from the environment (the portal's settings read the same variables)::

    ILIAD_ARTIFACT_STORE=s3://bucket/prefix          (empty or "dir": a directory store)
    ILIAD_ARTIFACT_STORE_ENDPOINT_URL=https://…      (MinIO, Ceph, moto, …; default AWS)
    ILIAD_ARTIFACT_STORE_REGION=eu-west-1
    ILIAD_ARTIFACT_STORE_ACCESS_KEY_ID=… / ILIAD_ARTIFACT_STORE_SECRET_ACCESS_KEY=…
                                                     (else boto3's usual chain: AWS_* variables,
                                                      ~/.aws, an instance role)

Objects are ``<prefix>/<relative path>``; each upload carries the file's sha256 as metadata, and a
cached file is used only when its size matches the object's. boto3 is imported only for an object
store, so the runner stays usable on machines without it when the store is a directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from blocks.manifest import STORE_SCHEME, ManifestError, ResultManifest, StepManifest, is_store_relative

ENV = "ILIAD_ARTIFACT_STORE"


class StoreError(RuntimeError):
    """The object store failed or refused (the message says which object and why)."""


def relative_part(uri: str) -> str | None:
    """The path of a store-relative URI inside the store (checked: relative, no ``..``), or None for
    a ``file://`` URI or an absolute path, which are not in the shared store."""
    if not is_store_relative(uri):
        return None
    parsed = urlparse(uri)
    relative = unquote(uri[len(STORE_SCHEME) + 1:] if parsed.scheme == STORE_SCHEME else uri)
    parts = PurePosixPath(relative).parts
    if relative.startswith(("/", "\\")) or ".." in parts or not parts:
        raise ManifestError(f"{uri!r} is not a path inside the artifact store")
    return PurePosixPath(*parts).as_posix()


@dataclass(frozen=True)
class ObjectStore:
    """An S3-compatible bucket (and key prefix) holding the artifact store."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @classmethod
    def from_settings(cls, url: str, options: Mapping[str, str | None]) -> ObjectStore | None:
        """The store that ``url`` (``ILIAD_ARTIFACT_STORE``) names with ``options`` (``endpoint_url``,
        ``region``, ``access_key_id``, ``secret_access_key``, ``session_token``); None for a directory
        store. ValueError for a URL that is neither."""
        url = (url or "").strip()
        if url in ("", "dir", "directory", "file"):
            return None
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{ENV}={url!r}: give s3://bucket/prefix, or leave it empty for a directory")
        return cls(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            **{key: (options.get(key) or None) for key in
               ("endpoint_url", "region", "access_key_id", "secret_access_key", "session_token")},
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ObjectStore | None:
        env = os.environ if env is None else env
        return cls.from_settings(env.get(ENV, ""), {
            "endpoint_url": env.get(f"{ENV}_ENDPOINT_URL"),
            "region": env.get(f"{ENV}_REGION"),
            "access_key_id": env.get(f"{ENV}_ACCESS_KEY_ID"),
            "secret_access_key": env.get(f"{ENV}_SECRET_ACCESS_KEY"),
            "session_token": env.get(f"{ENV}_SESSION_TOKEN"),
        })

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region or "us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            config=Config(
                retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=10, read_timeout=60
            ),
        )

    def _failed(self, what: str, relative: str, error: Exception) -> StoreError:
        response = getattr(error, "response", None) or {}
        reason = response.get("Error", {}).get("Code") or type(error).__name__
        return StoreError(f"artifact store {self.url}: {what} {relative!r} failed ({reason})")

    def size(self, relative: str) -> int | None:
        """The object's size, or None when there is none."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._client().head_object(Bucket=self.bucket, Key=self.key(relative))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._failed("looking up", relative, error) from None
        except BotoCoreError as error:
            raise self._failed("looking up", relative, error) from None
        return int(head["ContentLength"])

    def fetch(self, relative: str, root: Path) -> Path | None:
        """``root/relative``, downloaded when missing or of another size than the object; None when the
        store has no such object (and nothing is cached). Written atomically."""
        from botocore.exceptions import BotoCoreError, ClientError

        local = Path(root) / relative
        size = self.size(relative)
        if size is None:
            return local if local.is_file() else None
        if local.is_file() and local.stat().st_size == size:
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".{local.name}.{os.getpid()}.partial")
        try:
            self._client().download_file(self.bucket, self.key(relative), str(partial))
            os.replace(partial, local)
        except (ClientError, BotoCoreError) as error:
            raise self._failed("downloading", relative, error) from None
        finally:
            partial.unlink(missing_ok=True)
        return local

    def push(self, local: Path, relative: str, *, sha256: str | None = None) -> None:
        """Upload ``local`` as ``relative`` (skipped when an object of the same size and sha256 is there)."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client()
        key = self.key(relative)
        try:
            if sha256:
                try:
                    head = client.head_object(Bucket=self.bucket, Key=key)
                    if (head["ContentLength"] == local.stat().st_size
                            and head.get("Metadata", {}).get("sha256") == sha256):
                        return
                except ClientError:
                    pass
            extra = {"Metadata": {"sha256": sha256}} if sha256 else None
            client.upload_file(str(local), self.bucket, key, ExtraArgs=extra)
        except (ClientError, BotoCoreError, OSError) as error:
            raise self._failed("uploading", relative, error) from None


def fetch_inputs(manifest: StepManifest, store: ObjectStore, root: Path) -> list[str]:
    """Download the manifest's store-relative inputs this machine lacks; returns their paths. Raises
    StoreError for an input the store does not have (so the step fails saying which)."""
    fetched = []
    for port, ref in manifest.inputs.items():
        relative = relative_part(ref.uri)
        if relative is None:
            continue
        if store.fetch(relative, root) is None:
            raise StoreError(f"input {port!r}: {ref.uri} is neither in the artifact store {store.url} "
                             "nor on this machine")
        fetched.append(relative)
    return fetched


def push_outputs(manifest: StepManifest, result: ResultManifest, store: ObjectStore, root: Path) -> list[str]:
    """Upload the result's store-relative artifacts and the result manifest itself; returns their
    paths in the store."""
    pushed = []
    uploads: Iterable[tuple[str, str | None]] = [(record.uri, record.sha256) for record in result.artifacts]
    for uri, sha256 in [*uploads, (manifest.result_uri, None)]:
        relative = relative_part(uri)
        if relative is None:
            continue
        local = Path(root) / relative
        if local.is_file():
            store.push(local, relative, sha256=sha256)
            pushed.append(relative)
    return pushed
