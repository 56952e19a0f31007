from django.urls import path

from apps.delivery import apis

urlpatterns = [
    path("runs/<int:run_id>/delivery/", apis.RunDeliveryApi.as_view(), name="api-run-delivery"),
    path(
        "runs/<int:run_id>/delivery/again/", apis.RunDeliverAgainApi.as_view(), name="api-run-deliver-again"
    ),
    path(
        "pipelines/<int:pipeline_id>/delivery-choice/",
        apis.PipelineDeliveryChoiceApi.as_view(),
        name="api-pipeline-delivery-choice",
    ),
]
