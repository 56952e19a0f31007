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
