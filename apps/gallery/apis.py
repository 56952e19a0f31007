"""Template gallery API: list the pilot templates and make a pipeline from one."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.gallery.selectors import template_get, templates_all
from apps.gallery.services import template_use
from apps.pipelines.apis import invalid_response
from apps.pipelines.serializers import PipelineInvalidSerializer, PipelineSerializer
from apps.pipelines.services import PipelineInvalid


class TemplateSerializer(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    summary = serializers.CharField()
    sector = serializers.CharField()
    description = serializers.CharField(help_text="Markdown.")
    document = serializers.JSONField()


class TemplateUseSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


def get_template(slug: str):
    template = template_get(slug=slug)
    if template is None:
        raise Http404(f"no template {slug!r}")
    return template


class TemplateListApi(APIView):
    @extend_schema(responses=TemplateSerializer(many=True))
    def get(self, request):
        return Response([template.to_dict() for template in templates_all()])


class TemplateDetailApi(APIView):
    @extend_schema(responses=TemplateSerializer)
    def get(self, request, slug: str):
        return Response(get_template(slug).to_dict())


class TemplateUseApi(APIView):
    @extend_schema(
        request=TemplateUseSerializer, responses={201: PipelineSerializer, 400: PipelineInvalidSerializer}
    )
    def post(self, request, slug: str):
        template = get_template(slug)
        data = TemplateUseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            pipeline = template_use(template=template, owner=request.user, name=data.validated_data["name"])
        except PipelineInvalid as error:
            return invalid_response(error)
        data = PipelineSerializer(pipeline, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)
