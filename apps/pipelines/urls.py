from django.urls import path

from apps.pipelines import views

urlpatterns = [
    path("pipelines/", views.pipeline_list, name="pipeline-list"),
    path("pipelines/<int:pipeline_id>/", views.pipeline_detail, name="pipeline-detail"),
    path("pipelines/<int:pipeline_id>/run/", views.pipeline_run, name="pipeline-run"),
]
