from rest_framework import serializers

from apps.collab.models import Comment


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None)
    mentions = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    resolved = serializers.SerializerMethodField()
    resolved_by = serializers.CharField(source="resolved_by.username", default=None)

    class Meta:
        model = Comment
        fields = [
            "id",
            "node_id",
            "parent",
            "author",
            "body",
            "mentions",
            "resolved",
            "resolved_at",
            "resolved_by",
            "created_at",
            "updated_at",
        ]

    def get_resolved(self, comment) -> bool:
        return comment.resolved_at is not None


class CommentCreateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=5000, help_text="Markdown-free text; @username mentions someone.")
    node_id = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=64, help_text="Empty: the whole pipeline."
    )
    parent = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Reply to this comment."
    )


class CommentUpdateSerializer(serializers.Serializer):
    body = serializers.CharField(required=False, max_length=5000)
    resolved = serializers.BooleanField(
        required=False, help_text="Resolve (true) or reopen (false) the thread."
    )
