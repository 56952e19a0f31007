"""Comments API: ``/api/pipelines/<id>/comments/`` (list, create) and ``.../comments/<id>/`` (edit,
resolve, reopen). Whoever may see the pipeline may read and comment (404 for others)."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.collab.comments import CommentInvalid, CommentRefused, comment_create, comment_update, comments_of
from apps.collab.serializers import CommentCreateSerializer, CommentSerializer, CommentUpdateSerializer
from apps.pipelines.selectors import pipeline_get


def _pipeline(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    return pipeline


class CommentListApi(APIView):
    @extend_schema(responses=CommentSerializer(many=True))
    def get(self, request, pipeline_id: int):
        comments = comments_of(pipeline=_pipeline(request, pipeline_id))
        return Response(CommentSerializer(comments, many=True).data)

    @extend_schema(request=CommentCreateSerializer, responses={201: CommentSerializer})
    def post(self, request, pipeline_id: int):
        pipeline = _pipeline(request, pipeline_id)
        data = CommentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            comment = comment_create(
                pipeline=pipeline,
                author=request.user,
                body=data.validated_data["body"],
                node_id=data.validated_data["node_id"],
                parent_id=data.validated_data["parent"],
            )
        except CommentInvalid as error:
            raise ValidationError({error.field: [error.message]}) from error
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


class CommentDetailApi(APIView):
    @extend_schema(request=CommentUpdateSerializer, responses=CommentSerializer)
    def patch(self, request, pipeline_id: int, comment_id: int):
        pipeline = _pipeline(request, pipeline_id)
        comment = comments_of(pipeline=pipeline).filter(pk=comment_id).first()
        if comment is None:
            raise Http404("no such comment")
        data = CommentUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            comment = comment_update(
                comment=comment,
                user=request.user,
                body=data.validated_data.get("body"),
                resolved=data.validated_data.get("resolved"),
            )
        except CommentInvalid as error:
            raise ValidationError({error.field: [error.message]}) from error
        except CommentRefused as error:
            raise PermissionDenied(str(error)) from error
        return Response(CommentSerializer(comments_of(pipeline=pipeline).get(pk=comment.pk)).data)
