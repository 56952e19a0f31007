from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.pipelines.models import Pipeline, PipelineVersion
from apps.projects.access import pipeline_permissions
from apps.projects.models import Visibility
from engine.document import escape_pointer_token

MAX_DOCUMENT_DEPTH = 64


@extend_schema_field(
    {
        "description": "Any JSON value but null; the pipeline document is an object (see its format).",
        "anyOf": [{"type": t} for t in ("object", "array", "string", "number", "boolean")],
    }
)
class DocumentField(serializers.JSONField):
    """Any JSON value the database can store and the API can send back: nested at most
    ``MAX_DOCUMENT_DEPTH`` levels (Python's JSON encoder recurses once per level, so a deeper value
    that parsed could still fail when it is saved or rendered) and without NUL characters, which
    PostgreSQL's jsonb cannot hold. Errors name the JSON pointer of the offending value."""

    default_error_messages = {
        "too_deep": f"Nested more than {MAX_DOCUMENT_DEPTH} levels deep (at {{pointer}}).",
        "null_character": "Null characters are not allowed (at {pointer}).",
    }

    def to_internal_value(self, data):
        try:
            value = super().to_internal_value(data)
        except RecursionError:  # form input, whose JSON text DRF decodes itself
            self.fail("too_deep", pointer="the top level")
        pending = [(value, "", 0)]
        while pending:
            item, pointer, depth = pending.pop()
            if isinstance(item, str) and "\x00" in item:
                self.fail("null_character", pointer=pointer or "the top level")
            if not isinstance(item, (dict, list)):
                continue
            if depth >= MAX_DOCUMENT_DEPTH:
                self.fail("too_deep", pointer=pointer)
            for key, child in item.items() if isinstance(item, dict) else enumerate(item):
                child_pointer = f"{pointer}/{escape_pointer_token(key)}"
                if "\x00" in str(key):
                    self.fail("null_character", pointer=child_pointer)
                pending.append((child, child_pointer, depth + 1))
        return value


class ValidationIssueSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable error code, e.g. edge.type_mismatch.")
    pointer = serializers.CharField(help_text="JSON pointer into the document.")
    node = serializers.CharField(allow_null=True)
    port = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    details = serializers.DictField()


class PipelineInvalidSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = ValidationIssueSerializer(many=True)


class PipelineVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = PipelineVersion
        fields = ["number", "message", "created_by", "created_at", "document"]


class PipelinePermissionsSerializer(serializers.Serializer):
    """What the asking user may do to the pipeline (everyone who sees it may read it)."""

    edit = serializers.BooleanField(help_text="Change its name, description or document; share it by a link.")
    run = serializers.BooleanField(help_text="Start a run (and cancel runs of it).")
    delete = serializers.BooleanField(help_text="Delete it, or change its project or visibility.")


class PipelineSerializer(serializers.ModelSerializer):
    """A pipeline as the asking user sees it. Give the serializer ``context={"request": request}``
    (and, for a page of many, ``"permissions"`` from ``pipeline_permissions``)."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    version = serializers.IntegerField(source="latest_version", read_only=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    document = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()

    class Meta:
        model = Pipeline
        fields = [
            "id",
            "name",
            "description",
            "owner",
            "project",
            "visibility",
            "version",
            "created_at",
            "updated_at",
            "document",
            "permissions",
        ]

    def get_document(self, pipeline) -> dict:
        version = pipeline.versions.filter(number=pipeline.latest_version).first()
        return version.document if version else None

    @extend_schema_field(PipelinePermissionsSerializer)
    def get_permissions(self, pipeline) -> dict[str, bool]:
        known = self.context.get("permissions") or {}
        if pipeline.pk in known:
            return known[pipeline.pk]
        request = self.context.get("request")
        user = request.user if request is not None else None
        return pipeline_permissions(user=user, pipelines=[pipeline])[pipeline.pk]


class PipelineWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    document = DocumentField(help_text="The pipeline document (format iliad.pipeline, version 1).")
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    base_version = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="The version the document was edited from. When a newer version was saved since, the "
        "update is refused with 409 and who saved what; send it on every update of the document "
        "(omitted: the document replaces the latest version unchecked).",
    )
    project = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=50,
        help_text="Slug or id of a project where you are an owner or editor; empty or null: no project. "
        "Changing it needs the right to delete the pipeline.",
    )
    visibility = serializers.ChoiceField(
        choices=Visibility.choices,
        required=False,
        help_text="Who may see it: private (its owner), project (its project's members, by role), public "
        "(everyone signed in, read-only). Default for a new pipeline: private. Changing it needs the "
        "right to delete the pipeline.",
    )


class DocumentSerializer(serializers.Serializer):
    document = DocumentField()


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = ValidationIssueSerializer(many=True)
    choices = serializers.DictField(
        child=serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
        help_text="Node id → parameter → the variable or column names it can choose from, where the data "
        "are known (from a data-space file's attributes, or what the steps upstream pass on).",
    )
    extents = serializers.DictField(
        child=serializers.DictField(child=serializers.DictField()),
        help_text="Node id → the area ({bbox: {west, south, east, north}}, degrees) and days ({time: "
        "{start, end}}, ISO dates) of the data it works on, for nodes with area or time parameters, "
        "where known (a data-space file's coordinates, narrowed by subsets upstream).",
    )
