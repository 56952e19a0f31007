from rest_framework import serializers

from apps.catalog.models import BlockVersion


class BlockSummarySerializer(serializers.Serializer):
    id = serializers.CharField(source="latest.block_id")
    version = serializers.CharField(source="latest.version", help_text="Newest version.")
    title = serializers.CharField(source="latest.title")
    category = serializers.CharField(source="latest.category")
    description = serializers.CharField(source="latest.description")
    versions = serializers.ListField(child=serializers.CharField())


class BlockVersionSerializer(serializers.ModelSerializer):
    inputs = serializers.JSONField(source="spec.inputs")
    outputs = serializers.JSONField(source="spec.outputs")
    parameters = serializers.JSONField(source="spec.parameters", help_text="JSON Schema of the parameters.")
    resources = serializers.JSONField(source="spec.resources")

    class Meta:
        model = BlockVersion
        fields = [
            "version",
            "title",
            "category",
            "description",
            "available",
            "inputs",
            "outputs",
            "parameters",
            "resources",
        ]


class BlockDetailSerializer(serializers.Serializer):
    id = serializers.CharField()
    latest = serializers.CharField()
    versions = BlockVersionSerializer(many=True)
