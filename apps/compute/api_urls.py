from django.urls import path

from apps.compute import apis

urlpatterns = [
    path("compute-targets/", apis.ComputeTargetListApi.as_view(), name="api-compute-targets"),
    path(
        "compute-targets/<str:target_name>/", apis.ComputeTargetDetailApi.as_view(),
        name="api-compute-target-detail",
    ),
]
