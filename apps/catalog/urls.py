from django.urls import path

from apps.catalog import views

urlpatterns = [
    path("catalog/", views.catalog, name="catalog"),
    path("catalog/<str:block_id>/", views.block_detail, name="block-detail"),
]
