"""Projects, their members' roles, and read-only share links to pipelines.

Who may see and who may change what is decided in one place, ``apps.projects.access``; these models
only hold the facts it reads.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$"


class Role(models.TextChoices):
    OWNER = "owner", "owner (manages members; may delete the project's pipelines)"
    EDITOR = "editor", "editor (sees, edits, runs, cancels)"
    VIEWER = "viewer", "viewer (sees only)"


class MembershipSource(models.TextChoices):
    MANUAL = "manual", "added by a project owner"
    RULE = "rule", "granted by a sign-in group rule"


class Visibility(models.TextChoices):
    PRIVATE = "private", "only its owner"
    PROJECT = "project", "members of its project"
    PUBLIC = "public", "everyone signed in (read-only)"


class Project(models.Model):
    slug = models.CharField(
        max_length=50,
        unique=True,
        validators=[RegexValidator(SLUG_PATTERN, "lower-case letters, digits and inner hyphens, at most 50")],
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "slug"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEWER)
    source = models.CharField(max_length=8, choices=MembershipSource.choices, default=MembershipSource.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="unique_project_member")]
        ordering = ["project", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


class ShareLink(models.Model):
    """A read-only link to one pipeline for people without an account. Only a SHA-256 digest of its
    token is stored; the link is shown once, when it is made."""

    pipeline = models.ForeignKey("pipelines.Pipeline", on_delete=models.CASCADE, related_name="share_links")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters of the token, to recognise it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… for {self.pipeline_id}"

    def is_active(self, now=None) -> bool:
        return self.revoked_at is None and self.expires_at > (now or timezone.now())
