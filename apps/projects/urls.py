from django.urls import path

from apps.projects import views

urlpatterns = [
    path("projects/", views.project_list, name="project-list"),
    path("projects/<str:slug>/", views.project_detail, name="project-detail"),
    path("projects/<str:slug>/members/", views.member_add, name="project-member-add"),
    path("projects/<str:slug>/members/<int:membership_id>/role/", views.member_role, name="member-role"),
    path(
        "projects/<str:slug>/members/<int:membership_id>/remove/", views.member_remove, name="member-remove"
    ),
    path("pipelines/<int:pipeline_id>/sharing/", views.pipeline_sharing, name="pipeline-sharing"),
    path("pipelines/<int:pipeline_id>/share-links/", views.share_link_new, name="share-link-create"),
    path(
        "pipelines/<int:pipeline_id>/share-links/<int:link_id>/revoke/",
        views.share_link_end,
        name="share-link-revoke",
    ),
    path("share/<str:token>/", views.shared_pipeline, name="shared-pipeline"),
]
