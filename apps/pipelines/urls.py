from django.urls import path

from apps.pipelines import editor, views

urlpatterns = [
    path("pipelines/", views.pipeline_list, name="pipeline-list"),
    path("pipelines/new/", editor.pipeline_new, name="pipeline-new"),
    path("pipelines/<int:pipeline_id>/", views.pipeline_detail, name="pipeline-detail"),
    path("pipelines/<int:pipeline_id>/edit/", editor.pipeline_edit, name="pipeline-edit"),
    path("pipelines/<int:pipeline_id>/run/", views.pipeline_run, name="pipeline-run"),
    path("pipelines/<int:pipeline_id>/delete/", views.pipeline_delete_page, name="pipeline-delete"),
]
