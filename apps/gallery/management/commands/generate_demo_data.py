import time

from django.conf import settings
from django.core.management.base import BaseCommand

from blocks.library.demo_data import write_demo_data_space


class Command(BaseCommand):
    help = "Write the demo data space (regional ocean model, winds, buoys) into ILIAD_DATA_DIR if missing."

    def handle(self, *args, **options):
        started = time.monotonic()
        paths = write_demo_data_space(settings.ILIAD_DATA_DIR)
        self.stdout.write(
            f"Demo data space ready in {settings.ILIAD_DATA_DIR / 'demo'} "
            f"({len(paths)} files, {time.monotonic() - started:.1f} s)"
        )
