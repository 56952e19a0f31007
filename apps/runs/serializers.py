from django.urls import reverse
from rest_framework import serializers

from apps.runs.models import Artifact, Run, StepRun


class ArtifactSerializer(serializers.ModelSerializer):
    node = serializers.CharField(source="step.node_id")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = ["id", "node", "port", "type", "media_type", "sha256", "size", "created_at", "download_url"]

    def get_download_url(self, artifact) -> str:
        return reverse("api-artifact-download", args=[artifact.run_id, artifact.pk])


class StepErrorSerializer(serializers.Serializer):
    """Why a step failed, as users see it. The traceback the step's error also keeps is for
    administrators (admin site, server log) and is never part of the API."""

    type = serializers.CharField(help_text="The error's type, e.g. ValueError, WorkerLost, cancelled.")
    message = serializers.CharField(help_text="What went wrong; paths are relative to the data space.")


class StepRunSerializer(serializers.ModelSerializer):
    node = serializers.CharField(source="node_id")
    error = StepErrorSerializer(read_only=True, allow_null=True)

    class Meta:
        model = StepRun
        fields = [
            "node",
            "block_id",
            "block_version",
            "params",
            "state",
            "attempts",
            "error",
            "queued_at",
            "dispatched_at",
            "started_at",
            "finished_at",
        ]


class RunSerializer(serializers.ModelSerializer):
    pipeline = serializers.IntegerField(source="pipeline_id", allow_null=True)
    owner = serializers.CharField(source="owner.username")

    class Meta:
        model = Run
        fields = [
            "id",
            "pipeline",
            "pipeline_name",
            "pipeline_version",
            "owner",
            "target",
            "state",
            "last_event_seq",
            "created_at",
            "started_at",
            "finished_at",
        ]


class RunDetailSerializer(RunSerializer):
    steps = StepRunSerializer(many=True)
    artifacts = ArtifactSerializer(many=True)
    document = serializers.JSONField(source="snapshot.document")

    class Meta(RunSerializer.Meta):
        fields = RunSerializer.Meta.fields + ["steps", "artifacts", "document"]


class RunCreateSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1, help_text="Default: the latest version.")
    target = serializers.CharField(required=False, default="celery")


class RunEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    kind = serializers.CharField()
    node = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
