"""Data spaces: each connector against a real server on 127.0.0.1 (moto S3, wsgidav WebDAV, pydap
OPeNDAP, a static STAC catalogue over http.server, stac-fastapi-static), the URL and format guards,
access per user, write-only credentials, describe and preview, and ``space:`` sources in blocks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.test import override_settings

from apps.dataspaces.connectors import ConnectorError, NotFound, ReadOnly, build_connector, connector_for
from apps.dataspaces.models import DataSpace
from tests.support import dataspace_servers as servers

LOOPBACK = "127.0.0.1"


# ---- servers (module-scoped; a server that cannot start fails the tests) -------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Every server, with a small NetCDF file ``sst.nc`` in each readable place."""
    root = tmp_path_factory.mktemp("dataspace-servers")
    netcdf = servers.write_small_netcdf(root / "files" / "sst.nc")
    (root / "files" / "buoys.csv").write_text(
        "station,time,lat,lon,depth,variable,value,quality_flag\n"
        "B1,2024-06-01,45.0,-3.0,1,sst,15.5,1\nB1,2024-06-02,45.0,-3.0,1,sst,15.9,1\n"
    )
    opendap_root = root / "opendap"
    opendap_root.mkdir()
    shutil.copy(netcdf, opendap_root / "sst.nc")
    static_root = root / "static"
    (static_root / "data").mkdir(parents=True)
    shutil.copy(netcdf, static_root / "data" / "sst.nc")
    shutil.copy(root / "files" / "buoys.csv", static_root / "data" / "buoys.csv")
    started = []
    try:
        s3 = servers.S3Server().start()
        started.append(s3)
        dav = servers.WebDAVServer(root / "dav").start()
        started.append(dav)
        static = servers.StaticServer(static_root).start()
        started.append(static)
        catalog = servers.write_stac_catalog(static_root / "stac", f"{static.url}/data", netcdf)
        opendap = servers.opendap_server(opendap_root, root / "pydap.log").start()
        started.append(opendap)
        stac_api = servers.stac_api_server(catalog, root / "stac-api.log").start()
        started.append(stac_api)
        yield {
            "root": root,
            "netcdf": netcdf,
            "s3": s3,
            "dav": dav,
            "static": static,
            "opendap": opendap,
            "stac_api": stac_api,
            "catalog_url": f"{static.url}/stac/catalog.json",
        }
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def loopback_allowed(monkeypatch):
    """The URL guard lets the test servers on 127.0.0.1 through (as an administrator would allow a host)."""
    monkeypatch.setenv("ILIAD_URL_ALLOWED_HOSTS", LOOPBACK)


@pytest.fixture
def bucket(served):
    client = served["s3"].client()
    client.create_bucket(Bucket="ocean")
    client.upload_file(str(served["netcdf"]), "ocean", "runs/in/sst.nc")
    yield "ocean"
    served["s3"].reset()


def field_error(response, name: str) -> str:
    """The message of the API's 400 for field ``name``."""
    message = response.json()["fields"][name]
    return message if isinstance(message, str) else " ".join(message)


def s3_connector(served, credentials=servers.S3_USER, **config):
    return build_connector(
        "s3",
        name="bucket",
        credentials=credentials,
        config={"bucket": "ocean", "endpoint_url": served["s3"].url, "prefix": "runs", **config},
    )


def dav_connector(served, credentials=servers.WEBDAV_USER):
    return build_connector("webdav", name="drive", config={"url": served["dav"].url}, credentials=credentials)


# ---- the local connector -------------------------------------------------------------------------


def test_local_space_lists_stats_opens_writes_and_refuses_escapes(tmp_path):
    root = tmp_path / "space"
    servers.write_small_netcdf(root / "demo" / "sst.nc")
    (tmp_path / "secret.txt").write_text("not yours")
    (root / "demo" / "escape.txt").symlink_to(tmp_path / "secret.txt")
    space = build_connector("local", name="here", config={"root": str(root)})

    assert [(entry.name, entry.is_dir) for entry in space.list("")] == [("demo", True)]
    listed = space.list("demo")
    assert [entry.name for entry in listed] == ["sst.nc"]  # the link out of the space is not shown
    assert listed[0].media_type == "application/x-netcdf" and listed[0].size > 0
    with space.open("demo/sst.nc") as stream:
        assert stream.read(4) == b"\x89HDF"[:4] or stream.read(4)
    for bad in ("../secret.txt", "/etc/passwd", "demo/../../secret.txt", "demo\\x"):
        with pytest.raises(ConnectorError) as refused:
            space.stat(bad)
        assert refused.value.permanent
    with pytest.raises(ConnectorError, match="outside the space"):
        space.open("demo/escape.txt")
    with pytest.raises(NotFound):
        space.stat("demo/missing.nc")

    report = tmp_path / "report.html"
    report.write_text("<h1>done</h1>")
    written = space.put("results/run-1/report.html", report)
    assert written.path == "results/run-1/report.html" and written.size == len("<h1>done</h1>")
    assert (root / "results" / "run-1" / "report.html").read_text() == "<h1>done</h1>"
    assert [entry.name for entry in space.search({"q": "sst"})] == ["sst.nc"]
    read_only = build_connector("local", name="ro", config={"root": str(root), "read_only": True})
    with pytest.raises(ReadOnly):
        read_only.put("x.html", report)


# ---- S3 through moto's server --------------------------------------------------------------------


def test_s3_space_lists_stats_opens_puts_and_searches(served, bucket, loopback_allowed, tmp_path):
    space = s3_connector(served)
    assert [(entry.name, entry.is_dir) for entry in space.list("")] == [("in", True)]
    [entry] = space.list("in")
    assert (entry.path, entry.size) == ("in/sst.nc", served["netcdf"].stat().st_size)
    assert space.stat("in").is_dir
    with space.open("in/sst.nc") as stream:
        assert stream.read() == served["netcdf"].read_bytes()
    result = tmp_path / "out.csv"
    result.write_text("a,b\n1,2\n")
    written = space.put("out/run-7/out.csv", result)
    assert (written.path, written.size, written.media_type) == ("out/run-7/out.csv", 8, "text/csv")
    body = served["s3"].client().get_object(Bucket="ocean", Key="runs/out/run-7/out.csv")["Body"].read()
    assert body == b"a,b\n1,2\n"
    assert [entry.path for entry in space.search({"q": ".csv"})] == ["out/run-7/out.csv"]
    with pytest.raises(NotFound):
        space.stat("in/none.nc")


def test_s3_wrong_credentials_are_permanent_and_a_down_server_is_not(
    served, bucket, loopback_allowed, tmp_path
):
    wrong = s3_connector(served, credentials={"access_key_id": "x", "secret_access_key": "y"})
    # moto accepts any key unless IAM is enforced; a missing bucket is the permanent refusal it gives.
    with pytest.raises(ConnectorError) as refused:
        build_connector(
            "s3",
            name="b",
            credentials=servers.S3_USER,
            config={"bucket": "no-such-bucket", "endpoint_url": served["s3"].url},
        ).list("")
    assert refused.value.permanent and "NoSuchBucket" in str(refused.value)
    assert wrong.list("in")  # moto does not check keys: the request itself went through
    down = build_connector(
        "s3",
        name="down",
        credentials=servers.S3_USER,
        config={"bucket": "ocean", "endpoint_url": f"http://127.0.0.1:{servers.free_port()}"},
    )
    with pytest.raises(ConnectorError) as unreachable:
        down.list("")
    assert not unreachable.value.permanent and "cannot reach" in str(unreachable.value)


# ---- WebDAV through wsgidav ----------------------------------------------------------------------


def test_webdav_space_puts_lists_stats_opens_and_refuses_a_wrong_password(served, loopback_allowed, tmp_path):
    space = dav_connector(served)
    written = space.put("deliveries/run-3/sst.nc", served["netcdf"])
    assert (written.path, written.size) == ("deliveries/run-3/sst.nc", served["netcdf"].stat().st_size)
    assert (served["root"] / "dav" / "deliveries" / "run-3" / "sst.nc").read_bytes() == served[
        "netcdf"
    ].read_bytes()
    assert [(entry.name, entry.is_dir) for entry in space.list("deliveries")] == [("run-3", True)]
    with space.open("deliveries/run-3/sst.nc") as stream:
        assert stream.read() == served["netcdf"].read_bytes()
    assert "deliveries/run-3/sst.nc" in [entry.path for entry in space.search({"q": "sst"})]
    with pytest.raises(NotFound):
        space.stat("deliveries/none.nc")
    with pytest.raises(ConnectorError) as refused:
        dav_connector(served, credentials={"username": "dav-user", "password": "wrong"}).list("")
    assert refused.value.permanent and "refused" in str(refused.value)


# ---- HTTP, OPeNDAP and STAC ----------------------------------------------------------------------


def test_http_space_lists_an_index_and_opens_files_read_only(served, loopback_allowed):
    space = build_connector("http", name="web", config={"url": f"{served['static'].url}/data/"})
    names = [entry.name for entry in space.list("")]
    assert names == ["buoys.csv", "sst.nc"]
    entry = space.stat("sst.nc")
    assert entry.size == served["netcdf"].stat().st_size
    with space.open("sst.nc") as stream:
        assert stream.read() == served["netcdf"].read_bytes()
    with pytest.raises(ReadOnly):
        space.put("x.nc", served["netcdf"])
    with pytest.raises(NotFound):
        space.stat("none.nc")


def test_opendap_space_lists_datasets_of_pydap(served, loopback_allowed):
    space = build_connector("opendap", name="dap", config={"url": served["opendap"].url})
    assert "sst.nc" in [entry.name for entry in space.list("")]
    assert space.stat("sst.nc").extra["opendap"] is True
    with pytest.raises(ConnectorError, match="read remotely"):
        space.open("sst.nc")


def test_static_stac_catalogue_browses_items_and_assets_and_searches(served, loopback_allowed):
    space = build_connector("stac", name="cat", config={"url": served["catalog_url"]})
    assert [entry.name for entry in space.list("")] == ["biscay-sst"]
    items = space.list("biscay-sst")
    assert sorted(entry.name for entry in items) == ["sst-2024-06-01", "sst-2024-07-01"]
    [asset] = space.list("biscay-sst/sst-2024-06-01")
    assert (asset.name, asset.media_type) == ("data", "application/x-netcdf")
    with space.open("biscay-sst/sst-2024-06-01/data") as stream:
        assert stream.read() == served["netcdf"].read_bytes()
    found = space.search({"bbox": [-12, 40, 0, 50]})
    assert [entry.path for entry in found] == ["biscay-sst/sst-2024-06-01"]
    assert [entry.name for entry in space.search({"datetime": "2024-06-15/2024-07-15"})] == ["sst-2024-07-01"]


def test_stac_api_searches_by_area_time_and_collection(served, loopback_allowed):
    space = build_connector("stac", name="api", config={"url": served["stac_api"].url, "mode": "api"})
    assert [entry.name for entry in space.list("")] == ["biscay-sst"]
    found = space.search({"bbox": [-12, 40, 0, 50], "collection": "biscay-sst"})
    assert [entry.path for entry in found] == ["biscay-sst/sst-2024-06-01"]
    assert found[0].extra["bbox"] == [-10.0, 43.0, -1.0, 48.0]
    in_july = space.search({"datetime": "2024-06-15T00:00:00Z/2024-07-15T00:00:00Z"})
    assert [entry.name for entry in in_july] == ["sst-2024-07-01"]
    assert space.stat("biscay-sst/sst-2024-07-01/data").extra["href"].endswith("/data/sst.nc")


# ---- the URL guard applies to every remote kind --------------------------------------------------


@pytest.mark.parametrize(
    "kind, config",
    [
        ("s3", {"bucket": "b", "endpoint_url": "http://169.254.169.254/"}),
        ("webdav", {"url": "http://127.0.0.1:9/dav"}),
        ("http", {"url": "http://169.254.169.254/latest/meta-data/"}),
        ("opendap", {"url": "http://10.0.0.1/dodsC/"}),
        ("stac", {"url": "http://127.0.0.1:9/catalog.json"}),
    ],
)
def test_internal_addresses_are_refused_unless_allowed(kind, config, monkeypatch):
    monkeypatch.delenv("ILIAD_URL_ALLOWED_HOSTS", raising=False)
    with pytest.raises(ConnectorError) as refused:
        build_connector(kind, name="inside", config=config).list("")
    assert refused.value.permanent
    assert "refused" in str(refused.value) and "ILIAD_URL_ALLOWED_HOSTS" in str(refused.value)


def test_a_stac_asset_pointing_inside_is_refused(served, monkeypatch):
    monkeypatch.setenv("ILIAD_URL_ALLOWED_HOSTS", "localhost")  # the catalogue's host only
    catalog = served["catalog_url"].replace(LOOPBACK, "localhost")
    space = build_connector("stac", name="cat", config={"url": catalog})
    with pytest.raises(ConnectorError, match="refused"):
        space.open("biscay-sst/sst-2024-06-01/data")  # the asset's href is http://127.0.0.1:...


# ---- the API: access, credentials, describe, preview ---------------------------------------------


@pytest.fixture
def spaces(db, served, user, other_user, tmp_path, settings):
    settings.ILIAD_DATA_DIR = tmp_path / "portal-data"
    servers.write_small_netcdf(settings.ILIAD_DATA_DIR / "demo" / "sst.nc")
    settings.ILIAD_DATASPACE_CACHE_DIR = tmp_path / "cache"
    mine = DataSpace(
        name="alice-drive",
        title="Alice's drive",
        kind="webdav",
        owner=user,
        config={"url": served["dav"].url},
    )
    mine.set_credentials(servers.WEBDAV_USER)
    mine.save()
    theirs = DataSpace(
        name="bob-bucket",
        title="Bob's bucket",
        kind="s3",
        owner=other_user,
        config={"bucket": "ocean", "endpoint_url": served["s3"].url},
    )
    theirs.set_credentials(servers.S3_USER)
    theirs.save()
    opendap = DataSpace.objects.create(
        name="dap", title="OPeNDAP", kind="opendap", access="public", config={"url": served["opendap"].url}
    )
    return {"default": DataSpace.objects.get(name="data"), "mine": mine, "theirs": theirs, "opendap": opendap}


def test_the_portal_data_directory_is_the_default_local_space(spaces, api):
    default = spaces["default"]
    assert (default.kind, default.is_default_store, default.access) == ("local", True, "public")
    answer = api.get(f"/api/data-spaces/{default.pk}/browse/", {"path": "demo"})
    assert answer.status_code == 200
    [entry] = answer.json()["entries"]
    assert (entry["path"], entry["reference"]) == ("demo/sst.nc", "demo/sst.nc")


def test_users_see_their_own_and_public_spaces_never_others_private_ones(spaces, api, loopback_allowed):
    names = [space["name"] for space in api.get("/api/data-spaces/").json()]
    assert names == ["alice-drive", "dap", "data"]
    theirs = spaces["theirs"].pk
    for suffix in ("", "browse/", "search/?q=x", "describe/?path=in/sst.nc", "preview/?path=in/sst.nc"):
        assert api.get(f"/api/data-spaces/{theirs}/{suffix}").status_code == 404, suffix


def test_anonymous_users_get_no_spaces(spaces, client):
    assert client.get("/api/data-spaces/").status_code in (401, 403)
    assert client.get(f"/api/data-spaces/{spaces['default'].pk}/browse/").status_code in (401, 403)


def test_credentials_are_write_only(spaces, api, loopback_allowed):
    text = api.get("/api/data-spaces/").content.decode()
    assert servers.WEBDAV_USER["password"] not in text and "dav-user" not in text
    assert '"has_credentials":true' in text.replace(" ", "")
    created = api.post(
        "/api/data-spaces/",
        {
            "name": "my-bucket",
            "title": "Mine",
            "kind": "s3",
            "config": {"bucket": "ocean"},
            "credentials": {"access_key_id": "AKIA-visible-nowhere", "secret_access_key": "s3cr3t-value"},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert "s3cr3t-value" not in created.content.decode() and "AKIA-visible" not in created.content.decode()
    stored = DataSpace.objects.get(name="my-bucket")
    assert "s3cr3t-value" not in stored.credentials_encrypted
    assert stored.credentials()["secret_access_key"] == "s3cr3t-value"
    refused = api.post(
        "/api/data-spaces/",
        {"name": "root", "title": "x", "kind": "local", "config": {"root": "/"}},
        format="json",
    )
    assert refused.status_code == 403 and "kind" in refused.json()["detail"]
    misplaced = api.post(
        "/api/data-spaces/",
        {"name": "m", "title": "x", "kind": "s3", "config": {"bucket": "b", "secret_access_key": "k"}},
        format="json",
    )
    assert misplaced.status_code == 400 and "config" in misplaced.json()["fields"]


def test_browse_refuses_escapes_with_a_clear_400(spaces, api):
    answer = api.get(f"/api/data-spaces/{spaces['default'].pk}/browse/", {"path": "../"})
    assert answer.status_code == 400 and "'..'" in field_error(answer, "path")
    missing = api.get(f"/api/data-spaces/{spaces['default'].pk}/browse/", {"path": "nowhere"})
    assert missing.status_code == 404


def test_describe_tells_variables_units_time_and_area_of_a_local_file(spaces, api):
    answer = api.get(f"/api/data-spaces/{spaces['default'].pk}/describe/", {"path": "demo/sst.nc"})
    assert answer.status_code == 200, answer.content
    described = answer.json()
    assert described["variables"]["sst"]["units"] == "degC"
    assert described["variables"]["sst"]["standard_name"] == "sea_surface_temperature"
    assert described["dimensions"] == {"time": 3, "lat": 6, "lon": 10}
    assert described["time_range"]["start"].startswith("2024-06-01")
    assert described["bounding_box"] == {"lat_min": 43.0, "lat_max": 48.0, "lon_min": -10.0, "lon_max": -1.0}
    assert described["block"] == "data.open_gridded" and described["reference"] == "demo/sst.nc"
    assert described["size"] > 0 and described["size_warning"] == ""


def test_describe_copies_remote_files_and_opendap_is_read_remotely(spaces, api, loopback_allowed, served):
    dav = dav_connector(served)
    dav.put("in/sst.nc", served["netcdf"])
    answer = api.get(f"/api/data-spaces/{spaces['mine'].pk}/describe/", {"path": "in/sst.nc"})
    assert answer.status_code == 200, answer.content
    assert answer.json()["variables"]["sst"]["units"] == "degC"
    assert answer.json()["reference"] == "space:alice-drive/in/sst.nc"
    remote = api.get(f"/api/data-spaces/{spaces['opendap'].pk}/describe/", {"path": "sst.nc"})
    assert remote.status_code == 200, remote.content
    assert remote.json()["variables"]["sst"]["standard_name"] == "sea_surface_temperature"
    assert remote.json()["reference"] == "space:dap/sst.nc"


def test_describe_refuses_files_above_the_cap_and_warns_about_big_ones(
    spaces, api, loopback_allowed, served, settings
):
    dav_connector(served).put("in/sst.nc", served["netcdf"])
    settings.ILIAD_DESCRIBE_MAX_MB = 0
    answer = api.get(f"/api/data-spaces/{spaces['mine'].pk}/describe/", {"path": "in/sst.nc"})
    assert answer.status_code == 400 and "ILIAD_DESCRIBE_MAX_MB" in field_error(answer, "path")
    settings.ILIAD_SIZE_WARNING_MB = 0
    local = api.get(f"/api/data-spaces/{spaces['default'].pk}/describe/", {"path": "demo/sst.nc"})
    assert "GB" in local.json()["size_warning"]


def test_the_format_guard_applies_to_described_files(spaces, api, settings):
    (settings.ILIAD_DATA_DIR / "demo" / "fake.nc").write_bytes(b"GRIB" + b"\0" * 100)
    answer = api.get(f"/api/data-spaces/{spaces['default'].pk}/describe/", {"path": "demo/fake.nc"})
    assert answer.status_code == 400
    assert "demo/fake.nc" in field_error(answer, "path") and str(settings.ILIAD_DATA_DIR) not in field_error(
        answer, "path"
    )


def test_preview_draws_a_png_map(spaces, api):
    answer = api.get(f"/api/data-spaces/{spaces['default'].pk}/preview/", {"path": "demo/sst.nc"})
    assert answer.status_code == 200 and answer["Content-Type"] == "image/png"
    assert answer.content.startswith(b"\x89PNG")
    unknown = api.get(
        f"/api/data-spaces/{spaces['default'].pk}/preview/", {"path": "demo/sst.nc", "variable": "nope"}
    )
    assert unknown.status_code == 400 and "sst" in field_error(unknown, "variable")


def test_search_api_checks_bbox(spaces, api):
    answer = api.get(f"/api/data-spaces/{spaces['default'].pk}/search/", {"bbox": "1,2,3"})
    assert answer.status_code == 400 and "bbox" in answer.json()["fields"]
    found = api.get(f"/api/data-spaces/{spaces['default'].pk}/search/", {"q": "sst"})
    assert [entry["path"] for entry in found.json()["entries"]] == ["demo/sst.nc"]


# ---- space: sources in the data-access blocks ----------------------------------------------------


def _open(params: dict, tmp_path: Path, *, run_id=None):
    from blocks.context import StepContext
    from blocks.library.data_access import open_gridded_from_spaces

    ctx = StepContext(scratch_dir=tmp_path / "scratch", run_id=run_id)
    return open_gridded_from_spaces.function(ctx, {}, params)


def test_open_gridded_reads_space_references_of_every_kind(
    spaces, served, bucket, loopback_allowed, tmp_path
):
    for name in ("bob-bucket", "alice-drive"):
        DataSpace.objects.filter(name=name).update(access="public")
    dav_connector(served).put("in/sst.nc", served["netcdf"])
    for source in (
        "space:bob-bucket/runs/in/sst.nc",
        "space:alice-drive/in/sst.nc",
        "space:dap/sst.nc",
        "space:data/demo/sst.nc",
    ):
        opened = _open({"source": source}, tmp_path)
        assert opened["metadata"]["variables"]["sst"]["units"] == "degC", source
        assert opened["metadata"]["source"] == source


def test_a_run_may_not_read_a_private_space_of_someone_else(spaces, tmp_path, loopback_allowed):
    with pytest.raises(ValueError, match="no data space 'bob-bucket' that this run may read"):
        _open({"source": "space:bob-bucket/runs/in/sst.nc"}, tmp_path)
    with pytest.raises(ValueError, match="space:<name>/<path>"):
        _open({"source": "space:data"}, tmp_path)


def test_version_1_0_0_refuses_space_references_clearly(tmp_path):
    from blocks.context import StepContext
    from blocks.library.data_access import open_gridded

    with pytest.raises(ValueError, match="1.1.0 or later"):
        open_gridded.function(
            StepContext(scratch_dir=tmp_path, data_dir=tmp_path), {}, {"source": "space:x/y.nc"}
        )


@override_settings(ILIAD_DESCRIBE_MAX_MB=1)
def test_connector_for_uses_the_portal_data_dir_for_the_default_space(spaces, settings):
    connector = connector_for(spaces["default"])
    assert connector.root == Path(settings.ILIAD_DATA_DIR).resolve()
    with pytest.raises(ReadOnly):
        connector.put("x.txt", Path(__file__))


def test_describe_a_stac_item_and_its_netcdf_asset(spaces, api, served, loopback_allowed):
    catalog = DataSpace.objects.create(
        name="cat", title="Catalogue", kind="stac", access="public", config={"url": served["catalog_url"]}
    )
    item = api.get(f"/api/data-spaces/{catalog.pk}/describe/", {"path": "biscay-sst/sst-2024-06-01"})
    assert item.status_code == 200, item.content
    assert item.json()["kind"] == "item"
    assert item.json()["bounding_box"] == {
        "lon_min": -10.0,
        "lat_min": 43.0,
        "lon_max": -1.0,
        "lat_max": 48.0,
    }
    assert list(item.json()["assets"]) == ["data"]
    asset = api.get(f"/api/data-spaces/{catalog.pk}/describe/", {"path": "biscay-sst/sst-2024-06-01/data"})
    assert asset.status_code == 200, asset.content
    assert asset.json()["variables"]["sst"]["units"] == "degC"
    assert asset.json()["reference"] == "space:cat/biscay-sst/sst-2024-06-01/data"
