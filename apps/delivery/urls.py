from django.urls import path

from apps.delivery import views

urlpatterns = [
    path("runs/<int:run_id>/report/", views.run_report, name="run-report"),
    path("runs/<int:run_id>/report.pdf", views.run_report_pdf, name="run-report-pdf"),
]
