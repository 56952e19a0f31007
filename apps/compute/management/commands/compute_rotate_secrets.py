"""Re-encrypt every compute target's secret options with the current ILIAD_TARGET_SECRETS_KEY."""

from django.core.management.base import BaseCommand
from django.db import transaction

from apps.compute.models import ComputeTarget
from apps.compute.secrets import rotate


class Command(BaseCommand):
    help = __doc__

    @transaction.atomic
    def handle(self, *args, **options):
        rotated = 0
        for target in ComputeTarget.objects.select_for_update().exclude(secrets_encrypted=""):
            target.secrets_encrypted = rotate(target.secrets_encrypted)
            target.save(update_fields=["secrets_encrypted"])
            rotated += 1
        self.stdout.write(f"re-encrypted the secret options of {rotated} compute target(s)")
