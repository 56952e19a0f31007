from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.compute.models import ComputeTarget
from apps.compute.services import secret_keys


class StepCountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Steps sent to it and waiting for a worker.")
    running = serializers.IntegerField()


class ComputeTargetSerializer(serializers.ModelSerializer):
    overflow = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True,
        help_text="Where new steps go while its queue is deeper than burst_threshold.",
    )
    steps = serializers.SerializerMethodField(help_text="Its steps now.")
    config = serializers.SerializerMethodField(help_text="Its executor's options: for staff, null otherwise.")
    secret_keys = serializers.SerializerMethodField(
        help_text="Which secret options are set (never their values): for staff, null otherwise."
    )

    class Meta:
        model = ComputeTarget
        fields = [
            "name", "title", "kind", "description", "enabled", "is_default", "public",
            "max_concurrent_steps", "overflow", "burst_threshold", "steps", "config", "secret_keys",
        ]

    def _staff(self) -> bool:
        request = self.context.get("request")
        return bool(request and request.user.is_staff)

    @extend_schema_field(StepCountsSerializer)
    def get_steps(self, target) -> dict:
        return self.context.get("counts", {}).get(target.name, {"queued": 0, "running": 0})

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_config(self, target) -> dict | None:
        return target.config if self._staff() else None

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_secret_keys(self, target) -> list[str] | None:
        return secret_keys(target) if self._staff() else None


class ComputeTargetWriteSerializer(serializers.Serializer):
    """Staff only. ``secrets`` is write-only: each key given replaces that secret option, a key given
    null removes it, secret options not named are kept."""

    name = serializers.SlugField(max_length=64, help_text="Cannot be changed once created.")
    title = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=ComputeTarget.Kind.choices)
    description = serializers.CharField(allow_blank=True, required=False, max_length=20000)
    config = serializers.DictField(required=False, help_text="Non-secret options of its executor.")
    secrets = serializers.DictField(
        required=False, write_only=True, child=serializers.CharField(allow_null=True, max_length=10000),
        help_text="Secret options (keys, passwords, broker URLs with credentials); never returned.",
    )
    enabled = serializers.BooleanField(required=False)
    is_default = serializers.BooleanField(required=False)
    public = serializers.BooleanField(required=False)
    max_concurrent_steps = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=100000
    )
    overflow = serializers.SlugField(
        max_length=64, required=False, allow_null=True,
        help_text="Name of the target new steps go to while this one's queue is deeper than burst_threshold.",
    )
    burst_threshold = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=1000000
    )
