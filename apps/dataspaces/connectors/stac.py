"""STAC catalogues: a STAC API (pystac-client: search by area, time and collection) or a static
catalogue (pystac: a tree of JSON files), read-only. Items' assets become inputs.

``config``: ``url`` (the API's landing page, or a static ``catalog.json``/``collection.json``);
``mode``: ``api`` or ``static`` (default: ``static`` when the URL ends in ``.json``). Every
request, of the catalogue and of the assets, goes through the URL guard; hrefs that are not
http(s) (``file://``, bare paths) are refused. ``credentials``: optional ``token`` (bearer).

Paths: ``<collection or catalogue id>/.../<item id>/<asset key>``. Collections and items are
folders, assets are files; an item entry's ``extra`` has ``bbox``, ``datetime``, ``collection``
and ``assets``.
"""

from __future__ import annotations

import json
from itertools import islice
from typing import IO, Any
from urllib.parse import urlsplit

import pystac
import requests
from pystac.stac_io import DefaultStacIO

from apps.dataspaces.connectors.base import Connector, ConnectorError, Entry, NotFound, guess_media_type
from blocks import netguard

MAX_ITEMS = 200
TIMEOUT_S = 30.0


def _checked(href: str) -> str:
    if urlsplit(href).scheme.lower() not in netguard.ALLOWED_SCHEMES:
        raise netguard.UnsafeURL(f"{href!r}: only http(s) links are followed in a STAC catalogue")
    netguard.check_url(href)
    return href


class GuardedStacIO(DefaultStacIO):
    """pystac IO that reads only http(s) through the URL guard (never local files)."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        super().__init__(headers=headers)
        self.session = netguard.guarded_session()

    def read_text_from_href(self, href: str) -> str:
        response = netguard.guarded_get(
            _checked(href), headers=self.headers, session=self.session, timeout=TIMEOUT_S
        )
        try:
            if response.status_code != 200:
                raise ConnectorError(
                    f"{href} answered HTTP {response.status_code}", permanent=response.status_code < 500
                )
            return response.text
        finally:
            response.close()

    def write_text_to_href(self, href: str, txt: str) -> None:
        raise ConnectorError("STAC catalogues are read-only here")


class STACConnector(Connector):
    kind = "stac"
    writable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = str(self.config.get("url") or "").strip()
        if not self.url:
            raise ConnectorError(f"data space {self.name!r} has no STAC URL configured")
        self.mode = str(self.config.get("mode") or ("static" if self.url.endswith(".json") else "api"))
        if self.mode not in ("api", "static"):
            raise ConnectorError(f"data space {self.name!r}: mode must be 'api' or 'static'")
        self._root: Any = None

    @property
    def headers(self) -> dict[str, str]:
        token = self.credentials.get("token")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _guarded(self, action, what: str):
        try:
            return action()
        except ConnectorError:
            raise
        except netguard.UnsafeURL as error:
            raise ConnectorError(f"data space {self.name!r}: {error}") from None
        except requests.RequestException as error:
            raise ConnectorError(
                f"data space {self.name!r}: cannot reach the STAC server ({type(error).__name__})",
                permanent=False,
            ) from None
        except (pystac.STACError, json.JSONDecodeError, KeyError, ValueError) as error:
            raise ConnectorError(f"{what} in space {self.name!r}: {error}") from None
        except Exception as error:  # noqa: BLE001 - pystac-client's APIError and others
            status = getattr(error, "status_code", None)
            if status == 404:
                raise NotFound(f"{what} does not exist in space {self.name!r}") from None
            raise ConnectorError(
                f"{what} in space {self.name!r}: {error}", permanent=bool(status and status < 500)
            ) from None

    @property
    def root(self):
        if self._root is None:

            def opened():
                _checked(self.url)
                if self.mode == "static":
                    return pystac.read_file(self.url, stac_io=GuardedStacIO(self.headers))
                from pystac_client import Client

                return Client.open(self.url, stac_io=_guarded_api_io(self.headers))

            self._root = self._guarded(opened, "the catalogue")
        return self._root

    # ---- navigation -------------------------------------------------------------------------------

    def _node(self, parts: list[str]):
        """The catalogue, collection or item at ``parts``, or NotFound."""
        node = self.root
        for depth, part in enumerate(parts):
            what = repr("/".join(parts[: depth + 1]))
            child = None
            if isinstance(node, pystac.Item):
                raise NotFound(f"{what} does not exist in space {self.name!r}")
            if self.mode == "api" and depth == 0:
                child = self._guarded(lambda part=part, node=node: node.get_collection(part), what)
            elif self.mode == "api" and depth == 1:
                # Searched, not fetched from the collection: not every API links a collection's items.
                child = self._guarded(
                    lambda part=part: next(
                        iter(self.root.search(collections=[parts[0]], ids=[part], max_items=1).items()), None
                    ),
                    what,
                )
            else:
                child = self._guarded(lambda part=part, node=node: node.get_child(part), what)
                if child is None:
                    child = self._guarded(lambda part=part, node=node: _item_of(node, part), what)
            if child is None:
                raise NotFound(f"{what} does not exist in space {self.name!r}")
            node = child
        return node

    def list(self, path: str = "") -> list[Entry]:
        relative = self.clean(path)
        parts = relative.split("/") if relative else []
        node = self._node(parts)
        prefix = f"{relative}/" if relative else ""
        if isinstance(node, pystac.Item):
            return [self._asset_entry(prefix + key, key, asset) for key, asset in node.assets.items()]
        entries: list[Entry] = []
        if self.mode == "api" and not parts:
            children = self._guarded(lambda: list(node.get_collections()), "the collections")
        else:
            children = self._guarded(lambda: list(node.get_children()), repr(relative or "/"))
        for child in children:
            entries.append(
                Entry(
                    path=prefix + child.id,
                    name=child.id,
                    is_dir=True,
                    extra={
                        "title": child.title or "",
                        "description": (child.description or "")[:500],
                        "type": child.STAC_OBJECT_TYPE.value,
                    },
                )
            )
        if self.mode == "api" and not parts:
            return entries  # an API's landing page "items" would be a search of everything
        if self.mode == "api":
            items = self._guarded(
                lambda: list(self.root.search(collections=[parts[0]], max_items=MAX_ITEMS).items()),
                repr(relative),
            )
        else:
            items = self._guarded(lambda: list(islice(node.get_items(), MAX_ITEMS)), repr(relative or "/"))
        entries += [self._item_entry(prefix + item.id, item) for item in items]
        return entries

    def _item_entry(self, path: str, item: pystac.Item) -> Entry:
        return Entry(
            path=path,
            name=item.id,
            is_dir=True,
            modified=item.datetime,
            extra={
                "type": "Item",
                "bbox": item.bbox,
                "collection": item.collection_id,
                "datetime": item.datetime.isoformat() if item.datetime else None,
                "start_datetime": item.properties.get("start_datetime"),
                "end_datetime": item.properties.get("end_datetime"),
                "title": item.properties.get("title") or "",
                "assets": {
                    key: {"href": asset.get_absolute_href(), "type": asset.media_type, "title": asset.title}
                    for key, asset in item.assets.items()
                },
            },
        )

    def _asset_entry(self, path: str, key: str, asset: pystac.Asset) -> Entry:
        href = asset.get_absolute_href() or asset.href
        size = asset.extra_fields.get("file:size")
        return Entry(
            path=path,
            name=key,
            is_dir=False,
            size=int(size) if isinstance(size, int | float) else None,
            media_type=asset.media_type or guess_media_type(urlsplit(href).path),
            extra={"href": href, "title": asset.title or "", "roles": asset.roles or []},
        )

    def stat(self, path: str) -> Entry:
        relative = self.clean(path)
        if not relative:
            return Entry(path="", name="", is_dir=True)
        parts = relative.split("/")
        try:
            node = self._node(parts)
        except NotFound:
            if len(parts) < 2:
                raise
            item = self._node(parts[:-1])
            if not isinstance(item, pystac.Item) or parts[-1] not in item.assets:
                raise NotFound(f"{relative!r} does not exist in space {self.name!r}") from None
            entry = self._asset_entry(relative, parts[-1], item.assets[parts[-1]])
            return self._with_size(entry)
        if isinstance(node, pystac.Item):
            return self._item_entry(relative, node)
        return Entry(path=relative, name=parts[-1], is_dir=True, extra={"title": node.title or ""})

    def _with_size(self, entry: Entry) -> Entry:
        if entry.size is None:
            try:
                response = self._guarded(
                    lambda: netguard.guarded_session().head(
                        _checked(entry.extra["href"]), headers=self.headers, timeout=TIMEOUT_S
                    ),
                    repr(entry.path),
                )
                length = response.headers.get("Content-Length")
                entry.size = (
                    int(length) if response.status_code == 200 and length and length.isdigit() else None
                )
            except ConnectorError:
                pass
        return entry

    def asset_href(self, path: str) -> str:
        """The absolute URL of the asset at ``path`` (checked by the URL guard)."""
        entry = self.stat(path)
        if entry.is_dir:
            raise ConnectorError(
                f"{path!r} in space {self.name!r} is a collection or item; pick one of its assets"
            )
        return self._guarded(lambda: _checked(entry.extra["href"]), repr(path))

    def open(self, path: str) -> IO[bytes]:
        href = self.asset_href(path)
        response = self._guarded(
            lambda: netguard.guarded_get(href, headers=self.headers, stream=True, timeout=TIMEOUT_S),
            repr(path),
        )
        if response.status_code != 200:
            response.close()
            raise ConnectorError(
                f"{path!r} in space {self.name!r}: the server answered HTTP {response.status_code}",
                permanent=response.status_code < 500,
            )
        response.raw.decode_content = True
        return response.raw

    # ---- search -----------------------------------------------------------------------------------

    def search(self, query: dict[str, Any]) -> list[Entry]:
        limit = min(int(query.get("limit") or 100), MAX_ITEMS)
        bbox = query.get("bbox")
        when = query.get("datetime") or None
        collections = [query["collection"]] if query.get("collection") else None
        text = str(query.get("q") or "").strip().lower()
        if self.mode == "api":

            def searched():
                search = self.root.search(
                    bbox=bbox,
                    datetime=when,
                    collections=collections,
                    max_items=limit if not text else MAX_ITEMS,
                )
                return list(search.items())

            items = self._guarded(searched, "the search")
        else:
            items = self._guarded(
                lambda: list(islice(self.root.get_items(recursive=True), 5000)), "the search"
            )
            items = [item for item in items if _matches(item, bbox, when, collections)]
        if text:
            items = [
                item
                for item in items
                if text in item.id.lower() or text in str(item.properties.get("title") or "").lower()
            ]
        return [self._item_entry(self._item_path(item), item) for item in items[:limit]]

    def _item_path(self, item: pystac.Item) -> str:
        if self.mode == "api":
            return f"{item.collection_id}/{item.id}"
        ids: list[str] = [item.id]
        parent = item.get_parent()
        while parent is not None and parent is not self.root and parent.id != self.root.id:
            ids.insert(0, parent.id)
            parent = parent.get_parent()
        return "/".join(ids)


def _item_of(node, item_id: str):
    for item in islice(node.get_items(), 10_000):
        if item.id == item_id:
            return item
    return None


def _guarded_api_io(headers: dict[str, str]):
    from pystac_client.stac_api_io import StacApiIO

    class GuardedStacApiIO(StacApiIO):
        """pystac-client IO through the URL guard; never reads local files."""

        def read_text(self, source, *args, **kwargs):
            href = source.href if isinstance(source, pystac.Link) else str(source)
            _checked(href)
            return super().read_text(source, *args, **kwargs)

        def request(self, href, *args, **kwargs):
            _checked(href)
            return super().request(href, *args, **kwargs)

    io = GuardedStacApiIO(headers=headers, timeout=TIMEOUT_S, max_retries=None)
    io.session = netguard.guarded_session()
    io.session.headers.update(headers)
    return io


def _matches(
    item: pystac.Item, bbox: list[float] | None, when: str | None, collections: list[str] | None
) -> bool:
    if collections and item.collection_id not in collections:
        return False
    if bbox and item.bbox:
        west, south, east, north = bbox
        if item.bbox[0] > east or item.bbox[2] < west or item.bbox[1] > north or item.bbox[3] < south:
            return False
    if when:

        def str_to_datetime(text: str):
            from datetime import UTC

            from pystac.utils import str_to_datetime as parsed

            moment = parsed(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

        start_text, _, end_text = str(when).partition("/")
        start = str_to_datetime(start_text) if start_text not in ("", "..") else None
        end = str_to_datetime(end_text) if end_text not in ("", "..") else (start if not end_text else None)
        item_start = item.datetime or (
            str_to_datetime(item.properties["start_datetime"])
            if item.properties.get("start_datetime")
            else None
        )
        item_end = item.datetime or (
            str_to_datetime(item.properties["end_datetime"]) if item.properties.get("end_datetime") else None
        )
        if item_start is None:
            return False
        if end is not None and item_start > end:
            return False
        if start is not None and (item_end or item_start) < start:
            return False
    return True
