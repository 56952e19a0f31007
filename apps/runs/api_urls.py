from django.urls import path

from apps.runs import apis

urlpatterns = [
    path("pipelines/<int:pipeline_id>/runs/", apis.PipelineRunsApi.as_view(), name="api-pipeline-runs"),
    path("runs/", apis.RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", apis.RunDetailApi.as_view(), name="api-run-detail"),
    path("runs/<int:run_id>/cancel/", apis.RunCancelApi.as_view(), name="api-run-cancel"),
    path("runs/<int:run_id>/events/", apis.RunEventsApi.as_view(), name="api-run-events"),
    path("runs/<int:run_id>/rerun/", apis.RunRerunApi.as_view(), name="api-run-rerun"),
    path("runs/<int:run_id>/retry/", apis.RunRetryApi.as_view(), name="api-run-retry"),
    path(
        "runs/<int:run_id>/artifacts/<int:artifact_id>/download/",
        apis.ArtifactDownloadApi.as_view(),
        name="api-artifact-download",
    ),
    path(
        "runs/<int:run_id>/artifacts/<int:artifact_id>/rows/",
        apis.ArtifactRowsApi.as_view(),
        name="api-artifact-rows",
    ),
]
