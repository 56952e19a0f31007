from django.urls import path

from apps.collab import apis

urlpatterns = [
    path(
        "pipelines/<int:pipeline_id>/comments/", apis.CommentListApi.as_view(), name="api-pipeline-comments"
    ),
    path(
        "pipelines/<int:pipeline_id>/comments/<int:comment_id>/",
        apis.CommentDetailApi.as_view(),
        name="api-pipeline-comment",
    ),
]
