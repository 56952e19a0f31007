"""The portal's ASGI application served for real by uvicorn in a subprocess, for tests that need
WebSockets over a real socket (pytest-django's ``live_server`` is WSGI only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from iliad_portal.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


class AsgiServer:
    """``iliad_portal.asgi:application`` under uvicorn on 127.0.0.1, on the test database.

    ``database_url`` points the server at the test database (the test must commit what the server
    should see: ``transactional_db``). :meth:`kill` and :meth:`start` again reuse the same port, so a
    browser sees the server go away and come back. Its output goes to ``$ILIAD_HOME/asgi-<port>.log``.
    """

    def __init__(self, database_url: str, port: int | None = None) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ["ILIAD_HOME"]) / f"asgi-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> AsgiServer:
        """Start the server and wait until it accepts connections; fail with its log if it does not."""
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "uvicorn", "iliad_portal.asgi:application",
                    "--host", "127.0.0.1", "--port", str(self.port), "--lifespan", "off",
                    "--timeout-graceful-shutdown", "2",
                ],
                cwd=REPO_ROOT,
                env={**os.environ, "DATABASE_URL": self.database_url, "DJANGO_ALLOW_ASYNC_UNSAFE": ""},
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start on port {self.port}:\n{self.log()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the server: its connections drop at once, as when a host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        """The tail of the server's output, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"
