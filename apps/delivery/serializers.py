from rest_framework import serializers


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.ChoiceField(
        choices=["waiting", "queued", "delivering", "retrying", "delivered", "failed", "skipped"]
    )
    state_label = serializers.CharField()
    space = serializers.CharField(help_text="The data space's name.")
    space_title = serializers.CharField()
    folder = serializers.CharField(allow_blank=True)
    target_path = serializers.CharField(allow_blank=True, help_text="The run's folder in the space.")
    attempts = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True, help_text="Why the last attempt failed.")
    files = serializers.IntegerField(help_text="How many files were written.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)


class RunDeliverySerializer(serializers.Serializer):
    latest = DeliverySerializer(allow_null=True)
    deliveries = DeliverySerializer(many=True)
    report_url = serializers.CharField()
    report_pdf_url = serializers.CharField()
    may_deliver = serializers.BooleanField()


class DeliveryRequestSerializer(serializers.Serializer):
    space = serializers.CharField(max_length=64, help_text="Name of a data space you may write to.")
    folder = serializers.CharField(
        max_length=1000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Folder inside the space (created if missing); empty: its root.",
    )
    remember = serializers.BooleanField(
        required=False, default=True, help_text="Offer this choice again for the run's pipeline."
    )


class DeliveryChoiceSerializer(serializers.Serializer):
    space = serializers.CharField(max_length=64)
    folder = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class SpaceOptionSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    kind = serializers.CharField()


class DeliveryOptionsSerializer(serializers.Serializer):
    choice = DeliveryChoiceSerializer(allow_null=True, help_text="Your last choice for this pipeline.")
    spaces = SpaceOptionSerializer(many=True, help_text="The spaces you may deliver to.")
