"""The workshops API's answers (read-only)."""

from rest_framework import serializers


class WorkshopSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    facilitator = serializers.CharField(source="facilitator.username")
    project = serializers.CharField(source="project.slug", allow_null=True, default=None)
    current_item = serializers.IntegerField(source="current_item_id", allow_null=True)
    created_at = serializers.DateTimeField()


class TimerSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    title = serializers.CharField()
    planned_s = serializers.IntegerField(help_text="Seconds planned for the item.")
    left_s = serializers.IntegerField(help_text="Seconds left; negative when over time.")
    running = serializers.BooleanField()


class AgendaItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    position = serializers.IntegerField()
    title = serializers.CharField()
    minutes = serializers.IntegerField()


class WorkshopPipelineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    latest_version = serializers.IntegerField()


class WorkshopRunSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    pipeline_name = serializers.CharField()
    pipeline_version = serializers.IntegerField()
    state = serializers.CharField()
    started_by = serializers.CharField(allow_null=True)
    feedback_given = serializers.BooleanField(help_text="Whether the asking user gave feedback on the run.")
    feedback_wanted = serializers.BooleanField(
        help_text="The run is finished and the asking user has not given feedback on it yet."
    )


class DecisionSerializer(serializers.Serializer):
    text = serializers.CharField()
    agenda_item = serializers.IntegerField(allow_null=True)
    decided_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class WorkshopDetailSerializer(WorkshopSerializer):
    facilitating = serializers.BooleanField(help_text="Whether the asking user facilitates it.")
    current = TimerSerializer(allow_null=True, help_text="The current agenda item and its timer.")
    agenda = AgendaItemSerializer(many=True)
    pipelines = WorkshopPipelineSerializer(many=True, help_text="Its pipelines the asking user may see.")
    runs = WorkshopRunSerializer(many=True, help_text="Runs started in it that the asking user may see.")
    decisions = DecisionSerializer(many=True)
    participants = serializers.ListField(child=serializers.CharField(), help_text="User names.")
