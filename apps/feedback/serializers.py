from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.feedback.models import Feedback, FeedbackRevision, Notification, Verdict
from apps.feedback.services import MAX_COMMENT, MAX_TAG_LENGTH, MAX_TAGS


class FeedbackRevisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = FeedbackRevision
        fields = ["number", "rating", "verdict", "comment", "tags", "created_at"]


class FeedbackSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    artifact = serializers.IntegerField(source="artifact_id", allow_null=True)
    run = serializers.IntegerField(source="run_id")
    node = serializers.SerializerMethodField(help_text="The step that produced the result (none for a run).")
    block = serializers.SerializerMethodField(help_text="block id@version that produced the result.")
    mine = serializers.SerializerMethodField(help_text="Whether the asking user gave it (and may change it).")

    class Meta:
        model = Feedback
        fields = [
            "id",
            "run",
            "artifact",
            "node",
            "block",
            "user",
            "rating",
            "verdict",
            "comment",
            "tags",
            "created_at",
            "updated_at",
            "mine",
        ]

    def get_node(self, feedback) -> str | None:
        return feedback.artifact.step.node_id if feedback.artifact_id else None

    def get_block(self, feedback) -> str | None:
        if not feedback.artifact_id:
            return None
        return f"{feedback.artifact.step.block_id}@{feedback.artifact.step.block_version}"

    def get_mine(self, feedback) -> bool:
        return feedback.user_id == self.context["user"].pk


class FeedbackDetailSerializer(FeedbackSerializer):
    revisions = serializers.SerializerMethodField(help_text="Every saved state, the first one first.")

    class Meta(FeedbackSerializer.Meta):
        fields = FeedbackSerializer.Meta.fields + ["revisions"]

    @extend_schema_field(FeedbackRevisionSerializer(many=True))
    def get_revisions(self, feedback) -> list[dict]:
        return FeedbackRevisionSerializer(feedback.revisions.all(), many=True).data


class TagsField(serializers.ListField):
    child = serializers.CharField(max_length=MAX_TAG_LENGTH, allow_blank=True)


class FeedbackChangeSerializer(serializers.Serializer):
    rating = serializers.IntegerField(min_value=1, max_value=5, help_text="1 (poor) to 5 (excellent).")
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    comment = serializers.CharField(max_length=MAX_COMMENT, required=False, allow_blank=True, default="")
    tags = TagsField(required=False, default=list, max_length=MAX_TAGS)


class FeedbackGiveSerializer(FeedbackChangeSerializer):
    artifact = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        allow_null=True,
        default=None,
        help_text="One result of the run; leave out for feedback on the whole run.",
    )


class NotificationSerializer(serializers.ModelSerializer):
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "message", "url", "created_at", "read", "read_at"]

    def get_read(self, notification) -> bool:
        return notification.read_at is not None


class NotificationsReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=1000,
        help_text="The notifications to mark read; leave out to mark all of them read.",
    )


class UnreadSerializer(serializers.Serializer):
    unread = serializers.IntegerField(help_text="How many notifications are still unread.")


class VerdictCountsSerializer(serializers.Serializer):
    fit = serializers.IntegerField()
    needs_changes = serializers.IntegerField()
    wrong = serializers.IntegerField()


class VersionSummarySerializer(serializers.Serializer):
    version = serializers.CharField()
    count = serializers.IntegerField()
    mean_rating = serializers.FloatField(allow_null=True)
    verdicts = VerdictCountsSerializer()


class SeriesPointSerializer(VersionSummarySerializer):
    day = serializers.DateField()


class ValidationSerializer(serializers.Serializer):
    subject = serializers.CharField(help_text="The block id, or the pipeline's id.")
    count = serializers.IntegerField()
    mean_rating = serializers.FloatField(allow_null=True)
    verdicts = VerdictCountsSerializer()
    versions = VersionSummarySerializer(many=True)
    series = SeriesPointSerializer(many=True, help_text="Per version and day of the feedback's last change.")
