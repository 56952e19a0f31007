"""The setup steps of every ``make run`` start, in one process: ``python -m iliad_portal.setup_steps``.

``migrate``, ``collectstatic``, ``sync_catalog``, ``ensure_demo_user``, ``generate_demo_data`` — all
idempotent. One Django start-up instead of five, and ``collectstatic`` is skipped when no static
source file changed since the last one (it compresses every file again, ~30 s on a busy machine:
plotly.js with Brotli).
"""

from __future__ import annotations

import hashlib
import os
import sys

STAMP_NAME = ".iliad-collectstatic-stamp"

COMMANDS: tuple[tuple[str, ...], ...] = (
    ("migrate", "--noinput"),
    ("collectstatic", "--noinput", "-v0"),
    ("sync_catalog",),
    ("ensure_demo_user",),
    ("generate_demo_data",),
)


def static_sources_fingerprint() -> str:
    """A hash of every static file the finders see (path, size, modification time) and of the
    storage backend: what ``collectstatic`` would copy."""
    from django.conf import settings
    from django.contrib.staticfiles import finders

    digest = hashlib.sha256(repr(settings.STORAGES.get("staticfiles")).encode())
    entries = []
    for finder in finders.get_finders():
        for path, storage in finder.list([]):
            stat = os.stat(storage.path(path))  # the finders' storages are on the file system
            entries.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    for entry in sorted(entries):
        digest.update(entry.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    for command in COMMANDS:
        name, *args = command
        if name == "collectstatic":
            stamp = settings.STATIC_ROOT / STAMP_NAME
            fingerprint = static_sources_fingerprint()
            if stamp.is_file() and stamp.read_text() == fingerprint:
                print("[iliad] collectstatic: static files unchanged, skipped", flush=True)
                continue
            print(f"[iliad] {name}: manage.py {' '.join(command)}", flush=True)
            stamp.unlink(missing_ok=True)
            call_command(name, *args)
            stamp.write_text(fingerprint)
            continue
        print(f"[iliad] {name}: manage.py {' '.join(command)}", flush=True)
        call_command(name, *args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
