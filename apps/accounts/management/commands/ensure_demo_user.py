from django.conf import settings
from django.core.management.base import BaseCommand

from apps.accounts.services import demo_user_ensure


class Command(BaseCommand):
    help = "Create the local demo account if missing and print its credentials."

    def handle(self, *args, **options):
        username, password, created = demo_user_ensure(
            username=settings.ILIAD_DEMO_USERNAME,
            credentials_file=settings.ILIAD_HOME / "demo-password",
        )
        state = "created" if created else "ready"
        self.stdout.write(f"Demo account {state}:  username: {username}   password: {password}")
