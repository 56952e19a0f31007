"""DNS rebinding: WebDAV (httpx) and S3 (boto3) spaces connect to the address the URL guard checked,
never to a second DNS answer.

The spaces are named by host names under ``.test`` (reserved: the system resolver cannot resolve
them); only the guard's resolver (``netguard._resolve``, replaced here) knows them, answering
127.0.0.1. A request that succeeds therefore connected to the checked address; one the guard refuses
never leaves the process. The servers are the real ones of ``tests/test_dataspaces.py`` (wsgidav, moto).
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from apps.dataspaces.connectors import ConnectorError, build_connector
from blocks import netguard
from tests.support import dataspace_servers as servers
from tests.test_dataspaces import LOOPBACK, served  # noqa: F401 - the module's servers


@pytest.fixture
def guard_resolver(monkeypatch):
    """The guard resolves ``*.example.test`` to 127.0.0.1 and counts its lookups; the system cannot."""
    lookups: list[str] = []

    def resolve(host: str, port: int):
        lookups.append(host)
        if host.endswith(".example.test"):
            return [ipaddress.ip_address("127.0.0.1")]
        raise netguard.UnsafeURL(f"cannot resolve host {host!r}")

    monkeypatch.setattr(netguard, "_resolve", resolve)
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("dav.example.test", 80)
    return lookups


def renamed(url: str, host: str) -> str:
    return url.replace("127.0.0.1", host)


def test_webdav_connects_to_the_checked_address(served, guard_resolver, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("ILIAD_URL_ALLOWED_HOSTS", LOOPBACK)
    space = build_connector("webdav", name="drive", credentials=servers.WEBDAV_USER,
                            config={"url": renamed(served["dav"].url, "dav.example.test")})
    source = tmp_path / "note.txt"
    source.write_text("pinned")
    space.put("pinned/note.txt", source)
    with space.open("pinned/note.txt") as stream:
        assert stream.read() == b"pinned"
    assert [entry.name for entry in space.list("pinned")] == ["note.txt"]
    assert guard_resolver.count("dav.example.test") >= 3  # checked at every request


def test_webdav_refuses_a_name_that_turns_internal(served, guard_resolver, monkeypatch):  # noqa: F811
    monkeypatch.delenv("ILIAD_URL_ALLOWED_HOSTS", raising=False)
    space = build_connector("webdav", name="drive", credentials=servers.WEBDAV_USER,
                            config={"url": renamed(served["dav"].url, "dav.example.test")})
    with pytest.raises(ConnectorError) as refused:
        space.list("")
    assert "loopback" in str(refused.value)


def test_s3_connects_to_the_checked_address(served, guard_resolver, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("ILIAD_URL_ALLOWED_HOSTS", LOOPBACK)
    served["s3"].client().create_bucket(Bucket="pinned")
    try:
        # "localhost…": moto takes the bucket from the path (not the host name) for such hosts.
        space = build_connector("s3", name="bucket", credentials=servers.S3_USER, config={
            "bucket": "pinned", "endpoint_url": renamed(served["s3"].url, "localhost.example.test")})
        source = tmp_path / "note.txt"
        source.write_text("pinned")
        space.put("note.txt", source)
        with space.open("note.txt") as stream:
            assert stream.read() == b"pinned"
        assert guard_resolver.count("localhost.example.test") >= 3
        # A host the guard never checked cannot be reached through the pinned pool at all.
        monkeypatch.delenv("ILIAD_URL_ALLOWED_HOSTS")
        with pytest.raises(ConnectorError) as refused:
            space.list("")
        assert refused.value.permanent and "loopback" in str(refused.value)
    finally:
        served["s3"].reset()
