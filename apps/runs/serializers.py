from django.urls import reverse
from rest_framework import serializers

from apps.runs.models import Artifact, Run, StepRun
from apps.runs.presentation import consumed_ports, node_labels
from blocks.types import PORT_TYPES


def _document_facts(run: Run) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """(node labels, consumed output ports) of the run's document, worked out once per run object
    (the detail serializer's steps and artifacts share their run instance)."""
    facts = getattr(run, "_document_facts", None)
    if facts is None:
        document = (run.snapshot or {}).get("document") or {}
        facts = run._document_facts = (node_labels(document), consumed_ports(document))
    return facts


class ArtifactSerializer(serializers.ModelSerializer):
    node = serializers.CharField(source="step.node_id")
    label = serializers.SerializerMethodField(
        help_text="The label of the step that made it (else its node id)."
    )
    type_title = serializers.SerializerMethodField(
        help_text="What kind of result it is, in words (e.g. 'Figure (plotly)'); its media type if unknown."
    )
    deliverable = serializers.SerializerMethodField(
        help_text="True for a result of the pipeline: no step of the run reads it (false: intermediate)."
    )
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = [
            "id", "node", "label", "port", "type", "type_title", "media_type", "sha256", "size",
            "deliverable", "created_at", "download_url",
        ]  # fmt: skip

    def get_label(self, artifact) -> str:
        return _document_facts(artifact.run)[0].get(artifact.step.node_id, artifact.step.node_id)

    def get_type_title(self, artifact) -> str:
        port_type = PORT_TYPES.get(artifact.type)
        return port_type.title if port_type else artifact.media_type or "file"

    def get_deliverable(self, artifact) -> bool:
        return (artifact.step.node_id, artifact.port) not in _document_facts(artifact.run)[1]

    def get_download_url(self, artifact) -> str:
        return reverse("api-artifact-download", args=[artifact.run_id, artifact.pk])


class StepErrorSerializer(serializers.Serializer):
    """Why a step failed, as users see it. The traceback the step's error also keeps is for
    administrators (admin site, server log) and is never part of the API."""

    type = serializers.CharField(help_text="The error's type, e.g. ValueError, WorkerLost, cancelled.")
    message = serializers.CharField(help_text="What went wrong; paths are relative to the data space.")


class StepRunSerializer(serializers.ModelSerializer):
    node = serializers.CharField(source="node_id")
    label = serializers.SerializerMethodField(
        help_text="The step's label in the pipeline (else its node id)."
    )
    error = StepErrorSerializer(read_only=True, allow_null=True)
    cached = serializers.SerializerMethodField(
        help_text="True when the step did not execute but reused the results of an earlier identical step."
    )
    cached_from = serializers.IntegerField(
        source="cached_from_id",
        allow_null=True,
        read_only=True,
        help_text="The id of the earlier step whose results it reused.",
    )

    def get_cached(self, step) -> bool:
        return step.cached_from_id is not None

    def get_label(self, step) -> str:
        return _document_facts(step.run)[0].get(step.node_id, step.node_id)

    class Meta:
        model = StepRun
        fields = [
            "node",
            "label",
            "block_id",
            "block_version",
            "params",
            "state",
            "target",
            "attempts",
            "error",
            "cached",
            "cached_from",
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
            "cache",
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


class RunDeliveryTargetSerializer(serializers.Serializer):
    space = serializers.CharField(max_length=64, help_text="Name of a data space you may deliver to.")
    folder = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Folder inside the space (created if missing); empty: its root.",
    )


class RunCreateSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1, help_text="Default: the latest version.")
    target = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=64,
        help_text="The compute target of steps whose node names none (default: the default target).",
    )
    cache = serializers.BooleanField(
        required=False,
        default=True,
        help_text="false: execute every step, reusing no earlier results (default true: a step identical "
        "to a succeeded one of a run you may see reuses its results).",
    )
    delivery = RunDeliveryTargetSerializer(
        required=False,
        allow_null=True,
        help_text="Deliver the results, the processing report and the provenance to this data space and "
        "folder when the run succeeds (as POST /api/runs/{id}/delivery/ would; remembered for the "
        "pipeline). Checked before the run is created: a space you may not write to or an unsafe folder "
        "is a 400 and no run is started.",
    )


class RunRerunSerializer(serializers.Serializer):
    # "from" is a Python keyword: the field is declared under it below.
    params = serializers.DictField(
        child=serializers.DictField(),
        required=False,
        default=dict,
        help_text="Node id → parameter values to change; saves a new pipeline version and runs that.",
    )
    cache = serializers.BooleanField(required=False, default=True)


RunRerunSerializer._declared_fields["from"] = serializers.CharField(
    help_text="The node to execute again, with everything downstream of it; the steps upstream reuse "
    "this run's results."
)


class RunEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    kind = serializers.CharField()
    node = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class TableHeadSerializer(serializers.Serializer):
    columns = serializers.ListField(
        child=serializers.CharField(allow_blank=True), help_text="The header row."
    )
    rows = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(allow_blank=True)),
        help_text="The first rows, each a list of cells as text (cells over 200 characters are cut).",
    )
    truncated = serializers.BooleanField(help_text="True when the table has more rows than these.")
