from rest_framework import serializers

from apps.pipelines.models import Pipeline, PipelineVersion


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


class PipelineSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    version = serializers.IntegerField(source="latest_version", read_only=True)
    document = serializers.SerializerMethodField()

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "owner", "version", "created_at", "updated_at", "document"]

    def get_document(self, pipeline) -> dict:
        version = pipeline.versions.filter(number=pipeline.latest_version).first()
        return version.document if version else None


class PipelineWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    document = serializers.JSONField(help_text="The pipeline document (format iliad.pipeline, version 1).")
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class DocumentSerializer(serializers.Serializer):
    document = serializers.JSONField()


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = ValidationIssueSerializer(many=True)
