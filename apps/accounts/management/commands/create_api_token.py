from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import TokenScope
from apps.accounts.services import api_token_create
from apps.projects.access import projects_of


class Command(BaseCommand):
    help = "Create a personal API token for USER and print its key (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line")
        parser.add_argument(
            "--scope",
            choices=TokenScope.values,
            default=TokenScope.WRITE,
            help="read: GET/HEAD/OPTIONS only; write (default): everything the user may do.",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"Lifetime in days (default ILIAD_API_TOKEN_DAYS={settings.ILIAD_API_TOKEN_DAYS}, "
            f"at most ILIAD_API_TOKEN_MAX_DAYS={settings.ILIAD_API_TOKEN_MAX_DAYS}).",
        )
        parser.add_argument(
            "--project", default=None, help="Restrict the token to this project (its id or slug)."
        )

    def handle(self, *args, username, name, scope, days, project, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        try:
            _, key = api_token_create(
                user=user, name=name, scope=scope, days=days, project=self._project(user, project)
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(key)

    def _project(self, user, project: str | None):
        if project is None:
            return None
        projects = projects_of(user=user)
        found = projects.filter(pk=int(project)).first() if project.isdigit() else None
        found = found or projects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"--project: {user} is not a member of a project with id or slug {project!r}")
        return found
