from django.urls import path

from apps.feedback import views

urlpatterns = [
    path("feedback/give/", views.feedback_give_form, name="feedback-give"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications-read"),
    path("validation/blocks/<str:block_id>/", views.block_dashboard, name="validation-block"),
    path("validation/blocks/<str:block_id>/csv/", views.block_csv, name="validation-block-csv"),
    path("validation/pipelines/<int:pipeline_id>/", views.pipeline_dashboard, name="validation-pipeline"),
    path("validation/pipelines/<int:pipeline_id>/csv/", views.pipeline_csv, name="validation-pipeline-csv"),
]
