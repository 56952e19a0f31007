"""S3-compatible object storage (AWS, MinIO, Ceph, OVH, ...) through boto3, read and write.

``config``: ``bucket`` (required), ``prefix`` (folder inside the bucket that is the space's root),
``endpoint_url`` (for non-AWS services; checked by the URL guard), ``region``, ``read_only``.
``credentials``: ``access_key_id``, ``secret_access_key``, optional ``session_token``; without
them the bucket is read anonymously.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from apps.dataspaces.connectors.base import Connector, ConnectorError, Entry, NotFound, guess_media_type
from blocks import netguard

PERMANENT_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "AllAccessDisabled",
    "InvalidBucketName",
    "AccountProblem",
}


class S3Connector(Connector):
    kind = "s3"
    writable = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bucket = str(self.config.get("bucket") or "").strip()
        if not self.bucket:
            raise ConnectorError(f"data space {self.name!r} has no bucket configured")
        self.prefix = self.clean(str(self.config.get("prefix") or ""))
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            endpoint = str(self.config.get("endpoint_url") or "").strip() or None
            if endpoint:
                try:
                    netguard.check_url(endpoint)
                except netguard.UnsafeURL as error:
                    raise ConnectorError(f"data space {self.name!r}: {error}") from None
            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint,
                region_name=self.config.get("region") or None,
                aws_access_key_id=self.credentials.get("access_key_id") or None,
                aws_secret_access_key=self.credentials.get("secret_access_key") or None,
                aws_session_token=self.credentials.get("session_token") or None,
                config=Config(
                    signature_version=None if self.credentials.get("access_key_id") else _unsigned(),
                    connect_timeout=10,
                    read_timeout=60,
                    retries={"max_attempts": 2},
                    s3={"addressing_style": "path"},
                ),
            )
            if endpoint:
                # botocore would resolve the endpoint's name again for each connection: pin the checked
                # address (DNS rebinding), and check every request's URL before it is sent.
                check = netguard.pin_pool_manager(self._client._endpoint.http_session._manager)
                self._client.meta.events.register("before-send.s3", lambda request, **_: check(request.url))
        return self._client

    def _key(self, relative: str) -> str:
        return "/".join(part for part in (self.prefix, relative) if part)

    def _relative(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def _error(self, error: Exception, what: str) -> ConnectorError:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import ClientError

        if isinstance(error, S3UploadFailedError) and isinstance(error.__context__, ClientError):
            error = error.__context__  # upload_file wraps the server's refusal (e.g. AccessDenied)
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotFound(f"{what} does not exist in space {self.name!r}")
            message = error.response.get("Error", {}).get("Message") or code
            return ConnectorError(
                f"{what} in space {self.name!r}: {code} {message}".strip(), permanent=code in PERMANENT_CODES
            )
        if isinstance(error, ConnectorError):
            return error
        if isinstance(error, netguard.UnsafeURL):
            return ConnectorError(f"data space {self.name!r}: {error}", permanent=True)
        # Connection refused, time-outs, DNS: the server may be back later.
        return ConnectorError(
            f"{what} in space {self.name!r}: cannot reach the storage service ({type(error).__name__})",
            permanent=False,
        )

    def list(self, path: str = "") -> list[Entry]:
        relative = self.clean(path)
        key = self._key(relative)
        prefix = f"{key}/" if key else ""
        folders: list[Entry] = []
        files: list[Entry] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(prefix) :].rstrip("/")
                    folders.append(
                        Entry(path=self._relative(common["Prefix"].rstrip("/")), name=name, is_dir=True)
                    )
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix) :]
                    if not name or name.endswith("/"):
                        continue
                    files.append(self._file_entry(item["Key"], item["Size"], item.get("LastModified")))
        except Exception as error:  # noqa: BLE001 - translated into ConnectorError
            raise self._error(error, repr(relative or "/")) from None
        if relative and not folders and not files:
            raise NotFound(f"{relative!r} is not a folder in space {self.name!r}")
        return sorted(folders, key=lambda e: e.name.lower()) + sorted(files, key=lambda e: e.name.lower())

    def _file_entry(self, key: str, size: int, modified: Any) -> Entry:
        relative = self._relative(key)
        name = relative.rsplit("/", 1)[-1]
        return Entry(
            path=relative,
            name=name,
            is_dir=False,
            size=int(size),
            modified=modified,
            media_type=guess_media_type(name),
        )

    def stat(self, path: str) -> Entry:
        relative = self.clean(path)
        if not relative:
            return Entry(path="", name="", is_dir=True)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(relative))
            return self._file_entry(self._key(relative), head["ContentLength"], head.get("LastModified"))
        except Exception as error:  # noqa: BLE001
            failure = self._error(error, repr(relative))
            if not isinstance(failure, NotFound):
                raise failure from None
        self.list(relative)  # NotFound unless it is a folder
        return Entry(path=relative, name=relative.rsplit("/", 1)[-1], is_dir=True)

    def open(self, path: str) -> IO[bytes]:
        relative = self.clean(path)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(relative))["Body"]
        except Exception as error:  # noqa: BLE001
            raise self._error(error, repr(relative)) from None

    def put(self, path: str, local_file: Path) -> Entry:
        if self.read_only:
            return super().put(path, local_file)
        relative = self.clean(path)
        if not relative:
            raise ConnectorError(f"give a file name to write in space {self.name!r}")
        extra = {"ContentType": guess_media_type(relative) or "application/octet-stream"}
        try:
            self.client.upload_file(str(local_file), self.bucket, self._key(relative), ExtraArgs=extra)
        except Exception as error:  # noqa: BLE001
            cause = getattr(error, "last_exception", None) or error
            raise self._error(cause, f"writing {relative!r}") from None
        return self.stat(relative)


def _unsigned():
    from botocore import UNSIGNED

    return UNSIGNED
