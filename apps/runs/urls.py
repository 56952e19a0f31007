from django.urls import path

from apps.runs import views

urlpatterns = [
    path("runs/", views.run_list, name="run-list"),
    path("runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("runs/compare/", views.run_compare, name="run-compare"),
]
