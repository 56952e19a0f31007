from rest_framework import serializers

from apps.dataspaces.models import DataSpace


class DataSpaceSerializer(serializers.ModelSerializer):
    """A space as users see it: never its credentials, only whether it has some."""

    has_credentials = serializers.BooleanField(read_only=True)
    read_only = serializers.SerializerMethodField()
    owner = serializers.CharField(source="owner.username", read_only=True, default=None, allow_null=True)
    project = serializers.CharField(source="project.slug", read_only=True, default=None, allow_null=True)

    class Meta:
        model = DataSpace
        fields = [
            "id",
            "name",
            "title",
            "description",
            "kind",
            "access",
            "owner",
            "project",
            "is_default_store",
            "has_credentials",
            "read_only",
            "config",
        ]
        read_only_fields = fields

    def get_read_only(self, space: DataSpace) -> bool:
        return space.kind in ("http", "opendap", "stac") or bool((space.config or {}).get("read_only"))


class DataSpaceWriteSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=DataSpace.Kind.choices)
    access = serializers.ChoiceField(
        choices=DataSpace.Access.choices,
        default=DataSpace.Access.PRIVATE,
        help_text="private (you), project (the project's members: viewers read, editors and owners also "
        "deliver into it) or public (administrators only).",
    )
    project = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=50,
        help_text="Slug or id of a project where you are an owner or editor; needed for access 'project'. "
        "With an API token restricted to a project, that project (the default) and no other.",
    )
    config = serializers.DictField(required=False, default=dict)
    credentials = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        write_only=True,
        help_text="Write-only; never returned.",
    )

    def validate_config(self, value: dict) -> dict:
        for key in ("password", "secret_access_key", "token", "access_key_id", "username"):
            if key in value:
                raise serializers.ValidationError(f"{key!r} is a credential: give it in 'credentials'")
        return value

    def validate(self, attrs: dict) -> dict:
        kind = attrs.get("kind") or self.context.get("kind")
        if "config" in attrs and kind in CONFIG_KEYS:
            allowed = CONFIG_KEYS[kind]
            for key, value in attrs["config"].items():
                if key not in allowed:
                    takes = ", ".join(allowed)
                    raise serializers.ValidationError(
                        {"config": f"unknown option {key!r} for a {kind} space; it takes {takes}"}
                    )
                wanted = allowed[key]
                ok = (
                    all(isinstance(item, str) and "\x00" not in item for item in value)
                    if wanted is list and isinstance(value, list)
                    else isinstance(value, wanted) and not (isinstance(value, str) and "\x00" in value)
                )
                if not ok:
                    expected = "a list of texts" if wanted is list else wanted.__name__
                    raise serializers.ValidationError({"config": f"{key!r} must be {expected}"})
        return attrs


CONFIG_KEYS: dict[str, dict[str, type]] = {
    "local": {"root": str, "read_only": bool},
    "s3": {"bucket": str, "prefix": str, "endpoint_url": str, "region": str, "read_only": bool},
    "webdav": {"url": str, "read_only": bool},
    "http": {"url": str, "files": list},
    "opendap": {"url": str, "files": list},
    "stac": {"url": str, "mode": str},
}
"""The non-secret options each kind takes (see the connectors' module descriptions)."""


class EntrySerializer(serializers.Serializer):
    path = serializers.CharField()
    name = serializers.CharField()
    is_dir = serializers.BooleanField()
    size = serializers.IntegerField(allow_null=True)
    modified = serializers.CharField(allow_null=True)
    media_type = serializers.CharField(allow_null=True)
    extra = serializers.DictField()
    reference = serializers.CharField(allow_null=True)


class ListingSerializer(serializers.Serializer):
    """A folder's entries (browse) or the matches of a search."""

    space = serializers.CharField()
    path = serializers.CharField(required=False)
    entries = EntrySerializer(many=True)
    size_warning_bytes = serializers.IntegerField(
        required=False, help_text="The browser warns above this size."
    )
