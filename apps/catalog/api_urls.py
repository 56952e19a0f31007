from django.urls import path

from apps.catalog import apis

urlpatterns = [
    path("blocks/", apis.BlockListApi.as_view(), name="api-blocks"),
    path("blocks/<str:block_id>/", apis.BlockDetailApi.as_view(), name="api-block-detail"),
]
