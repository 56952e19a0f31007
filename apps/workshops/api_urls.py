from django.urls import path

from apps.workshops import apis

urlpatterns = [
    path("workshops/", apis.WorkshopListApi.as_view(), name="api-workshops"),
    path("workshops/<int:workshop_id>/", apis.WorkshopDetailApi.as_view(), name="api-workshop-detail"),
]
