"""People and their API tokens. Federated (OIDC) login maps onto the same User model later."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    """A portal user. Kept as our own model so identity-provider fields can be added in place."""


class TokenScope(models.TextChoices):
    READ = "read", "read only"
    WRITE = "write", "read and write"


class ApiToken(models.Model):
    """A personal API token. Only a SHA-256 digest is stored; the key is shown once at creation.

    A token acts as its user, narrowed by its ``scope`` (``read``: safe methods only) and, when
    ``project`` is set, to that project's objects. It stops working at ``expires_at`` or when revoked.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="")
    prefix = models.CharField(max_length=8, help_text="First characters of the key, to recognise it.")
    digest = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=5, choices=TokenScope.choices, default=TokenScope.WRITE)
    project = models.ForeignKey(
        "projects.Project",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_tokens",
        # CASCADE: a token restricted to a deleted project must not outlive it unrestricted.
        help_text="When set, the token sees and changes only this project's pipelines and runs.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Refused from this moment on; empty for tokens made before expiry existed.",
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_read_only(self) -> bool:
        return self.scope == TokenScope.READ

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class Identity(models.Model):
    """A person's account at an OpenID Connect provider, linked to one portal user. A user is found by
    (issuer, subject) alone — never by e-mail address, which providers do not guarantee to be unique or
    stable."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255, help_text="The provider's 'sub' claim.")
    provider = models.CharField(max_length=30, help_text="Name of the provider in ILIAD_OIDC_PROVIDERS.")
    claims = models.JSONField(default=dict, help_text="The claims of the latest sign-in.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="unique_identity_issuer_subject")
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer} ({self.user})"
