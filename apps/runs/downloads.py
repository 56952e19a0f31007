"""Serving artifact files without holding them in memory, under WSGI and ASGI alike."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import FileResponse


class StreamedFileResponse(FileResponse):
    """A ``FileResponse`` that streams under ASGI too.

    Django serves a synchronous iterator under ASGI by reading it to the end into a list first
    (``StreamingHttpResponse.__aiter__``), so a 5 GB artifact downloaded through the portal's ASGI
    server (``make run``, the compose file) would be held in the web process's memory whole. Here each
    block is read in a worker thread and sent before the next is read.
    """

    block_size = 256 * 1024  # one thread hop per block under ASGI: 4 KiB (Django's default) is slow

    async def __aiter__(self):
        filelike = self.file_to_stream
        if filelike is None:  # content that is not a file: Django's own handling
            async for part in super().__aiter__():
                yield part
            return
        read = sync_to_async(filelike.read, thread_sensitive=False)
        while chunk := await read(self.block_size):
            yield chunk


def is_table(media_type: str) -> bool:
    """Whether an artifact of this media type is a CSV table (parameters such as charset ignored)."""
    return media_type.split(";", 1)[0].strip().lower() == "text/csv"


TABLE_HEAD_MAX_BYTES = 1024 * 1024
TABLE_CELL_MAX_CHARS = 200


def table_head(path, limit: int) -> dict:
    """The header and first ``limit`` rows of a CSV file, for a preview: reads at most
    ``TABLE_HEAD_MAX_BYTES`` and cuts cells to ``TABLE_CELL_MAX_CHARS``, so a huge table or a giant
    cell cannot hold up the server or freeze the browser. ``truncated``: the file has more."""
    import csv
    import io

    with open(path, "rb") as file:
        raw = file.read(TABLE_HEAD_MAX_BYTES + 1)
    cut = len(raw) > TABLE_HEAD_MAX_BYTES
    text = raw[:TABLE_HEAD_MAX_BYTES].decode("utf-8", errors="replace")
    if cut:  # drop the partial last line
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text))
    csv.field_size_limit(TABLE_HEAD_MAX_BYTES)

    def cells(row: list[str]) -> list[str]:
        return [
            cell if len(cell) <= TABLE_CELL_MAX_CHARS else cell[: TABLE_CELL_MAX_CHARS - 1] + "…"
            for cell in row
        ]

    columns = cells(next(reader, []))
    rows = []
    for row in reader:
        if len(rows) == limit:
            return {"columns": columns, "rows": rows, "truncated": True}
        rows.append(cells(row))
    return {"columns": columns, "rows": rows, "truncated": cut}
