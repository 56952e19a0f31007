from django.core.management.base import BaseCommand

from apps.catalog.services import catalog_sync
from blocks.registry import default_registry


class Command(BaseCommand):
    help = "Discover blocks (built-in library, iliad.blocks entry points) and sync them into the catalog."

    def handle(self, *args, **options):
        report = catalog_sync(registry=default_registry())
        self.stdout.write(
            f"Catalog synced: {report.added} added, {report.updated} updated, "
            f"{report.unavailable} no longer provided."
        )
        for error in report.errors:
            self.stderr.write(f"block discovery problem: {error}")
