from django.urls import path

from apps.feedback import apis

urlpatterns = [
    path("feedback/", apis.FeedbackListApi.as_view(), name="api-feedback"),
    path("runs/<int:run_id>/feedback/", apis.RunFeedbackApi.as_view(), name="api-run-feedback"),
    path("feedback/<int:feedback_id>/", apis.FeedbackDetailApi.as_view(), name="api-feedback-detail"),
    path("notifications/", apis.NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read/", apis.NotificationsReadApi.as_view(), name="api-notifications-read"),
    path("blocks/<str:block_id>/validation/", apis.BlockValidationApi.as_view(), name="api-block-validation"),
    path(
        "pipelines/<int:pipeline_id>/validation/",
        apis.PipelineValidationApi.as_view(),
        name="api-pipeline-validation",
    ),
]
