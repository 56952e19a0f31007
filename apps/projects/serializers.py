from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.projects.models import SLUG_PATTERN, Membership, Project, Role, ShareLink
from apps.projects.services import SHARE_LINK_MAX_DAYS


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Membership
        fields = ["username", "role", "source", "created_at"]


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role in the project.")

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "created_at", "role"]

    def get_role(self, project) -> str:
        return self.context["roles"].get(project.pk, "")


class ProjectDetailSerializer(ProjectSerializer):
    members = serializers.SerializerMethodField()

    class Meta(ProjectSerializer.Meta):
        fields = ProjectSerializer.Meta.fields + ["members"]

    @extend_schema_field(MemberSerializer(many=True))
    def get_members(self, project) -> list[dict]:
        return MemberSerializer(self.context["members"], many=True).data


class ProjectWriteSerializer(serializers.Serializer):
    slug = serializers.RegexField(
        SLUG_PATTERN,
        max_length=50,
        help_text="Its name in URLs: lower-case letters, digits and inner hyphens, at most 50.",
        error_messages={"invalid": "use lower-case letters, digits and inner hyphens (at most 50)"},
    )
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class MemberAddSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ShareLinkSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)
    active = serializers.SerializerMethodField()

    class Meta:
        model = ShareLink
        fields = ["id", "prefix", "created_by", "created_at", "expires_at", "revoked_at", "active"]

    def get_active(self, link) -> bool:
        return link.is_active()


class ShareLinkCreatedSerializer(ShareLinkSerializer):
    url = serializers.CharField(help_text="The link, shown only now: it is not stored, only its digest.")

    class Meta(ShareLinkSerializer.Meta):
        fields = ShareLinkSerializer.Meta.fields + ["url"]


class ShareLinkCreateSerializer(serializers.Serializer):
    days = serializers.IntegerField(
        required=False, default=7, min_value=1, max_value=SHARE_LINK_MAX_DAYS, help_text="How long it works."
    )
