"""Data spaces: where inputs are read from and results delivered to (a folder, an S3 bucket, a
WebDAV drive, an HTTP/OPeNDAP server, a STAC catalogue). Pipelines name a file in one as
``space:<name>/<path>``."""

from django.conf import settings
from django.db import models

from apps.dataspaces.secrets import decrypt_json, encrypt_json


class DataSpace(models.Model):
    class Kind(models.TextChoices):
        LOCAL = "local", "Folder on the portal's machine (or a shared file system)"
        S3 = "s3", "S3-compatible object storage"
        WEBDAV = "webdav", "WebDAV drive (Nextcloud, B2DROP, ...)"
        HTTP = "http", "HTTP(S) file server (read-only)"
        OPENDAP = "opendap", "OPeNDAP server (read-only)"
        STAC = "stac", "STAC catalogue or API (read-only)"

    class Access(models.TextChoices):
        PRIVATE = "private", "Only its owner"
        PROJECT = "project", "Members of its project"
        PUBLIC = "public", "Every signed-in user"

    name = models.SlugField(
        max_length=64, unique=True, help_text="Short identifier used in pipelines: space:<name>/<path>."
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="For users: what the space holds (markdown).")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text="Non-secret options: root, bucket, prefix, endpoint_url, url, mode, read_only, files.",
    )
    credentials_encrypted = models.TextField(
        blank=True, default="", editable=False, help_text="Keys, passwords, tokens; encrypted, never shown."
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="data_spaces"
    )
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="data_spaces"
    )
    access = models.CharField(max_length=16, choices=Access.choices, default=Access.PRIVATE)
    is_default_store = models.BooleanField(
        default=False, help_text="The portal's own store: where data-space paths without 'space:' point."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default_store"],
                condition=models.Q(is_default_store=True),
                name="one_default_data_space",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"

    def credentials(self) -> dict:
        """The decrypted credentials (ValueError when they cannot be decrypted)."""
        return decrypt_json(self.credentials_encrypted)

    def set_credentials(self, value: dict | None) -> None:
        self.credentials_encrypted = encrypt_json({key: item for key, item in (value or {}).items() if item})

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)

    @property
    def reference_prefix(self) -> str:
        return f"space:{self.name}/"
