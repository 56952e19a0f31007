from django.urls import path

from apps.pipelines import apis

urlpatterns = [
    path("pipelines/", apis.PipelineListApi.as_view(), name="api-pipelines"),
    path("pipelines/validate/", apis.PipelineValidateApi.as_view(), name="api-pipeline-validate"),
    path("pipelines/<int:pipeline_id>/", apis.PipelineDetailApi.as_view(), name="api-pipeline-detail"),
    path(
        "pipelines/<int:pipeline_id>/versions/",
        apis.PipelineVersionListApi.as_view(),
        name="api-pipeline-versions",
    ),
    path(
        "pipelines/<int:pipeline_id>/versions/<int:number>/",
        apis.PipelineVersionDetailApi.as_view(),
        name="api-pipeline-version-detail",
    ),
]
