from django.urls import path

from apps.workshops import views

urlpatterns = [
    path("workshops/", views.workshop_list, name="workshop-list"),
    path("workshops/join/<str:token>/", views.workshop_join_page, name="workshop-join"),
    path("workshops/<int:workshop_id>/", views.workshop_detail, name="workshop-detail"),
    path("workshops/<int:workshop_id>/manage/", views.workshop_manage, name="workshop-manage"),
    path("workshops/<int:workshop_id>/follow/", views.workshop_follow, name="workshop-follow"),
    path("workshops/<int:workshop_id>/state/", views.workshop_state_json, name="workshop-state"),
    path("workshops/<int:workshop_id>/run/", views.workshop_run, name="workshop-run"),
    path("workshops/<int:workshop_id>/summary/", views.workshop_summary, name="workshop-summary"),
    path("workshops/<int:workshop_id>/export.json", views.workshop_export_json, name="workshop-export-json"),
    path("workshops/<int:workshop_id>/export.csv", views.workshop_export_csv, name="workshop-export-csv"),
]
