from django.urls import path

from apps.projects import apis

urlpatterns = [
    path("projects/", apis.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<str:project_slug>/", apis.ProjectDetailApi.as_view(), name="api-project-detail"),
    path(
        "projects/<str:project_slug>/members/", apis.ProjectMembersApi.as_view(), name="api-project-members"
    ),
    path(
        "projects/<str:project_slug>/members/<str:username>/",
        apis.ProjectMemberApi.as_view(),
        name="api-project-member",
    ),
    path(
        "pipelines/<int:pipeline_id>/share-links/", apis.ShareLinkListApi.as_view(), name="api-share-links"
    ),
    path(
        "pipelines/<int:pipeline_id>/share-links/<int:link_id>/",
        apis.ShareLinkDetailApi.as_view(),
        name="api-share-link-detail",
    ),
]
