from django.urls import path

from apps.dataspaces import apis

urlpatterns = [
    path("data-spaces/", apis.DataSpaceListApi.as_view(), name="api-data-spaces"),
    path("data-spaces/<int:space_id>/", apis.DataSpaceDetailApi.as_view(), name="api-data-space"),
    path(
        "data-spaces/<int:space_id>/browse/", apis.DataSpaceBrowseApi.as_view(), name="api-data-space-browse"
    ),
    path(
        "data-spaces/<int:space_id>/search/", apis.DataSpaceSearchApi.as_view(), name="api-data-space-search"
    ),
    path(
        "data-spaces/<int:space_id>/describe/",
        apis.DataSpaceDescribeApi.as_view(),
        name="api-data-space-describe",
    ),
    path(
        "data-spaces/<int:space_id>/preview/",
        apis.DataSpacePreviewApi.as_view(),
        name="api-data-space-preview",
    ),
]
