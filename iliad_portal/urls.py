"""URL routing: server-rendered pages, the REST API under /api/, its schema and docs."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("", include("apps.accounts.urls")),
    path("", include("apps.catalog.urls")),
    path("", include("apps.pipelines.urls")),
    path("", include("apps.runs.urls")),
    path("", include("apps.delivery.urls")),
    path("", include("apps.gallery.urls")),
    path("", include("apps.projects.urls")),
    path("", include("apps.feedback.urls")),
    path("", include("apps.workshops.urls")),
    path("api/", include("apps.catalog.api_urls")),
    path("api/", include("apps.pipelines.api_urls")),
    path("api/", include("apps.collab.api_urls")),
    path("api/", include("apps.runs.api_urls")),
    path("api/", include("apps.delivery.api_urls")),
    path("api/", include("apps.gallery.api_urls")),
    path("api/", include("apps.projects.api_urls")),
    path("api/", include("apps.compute.api_urls")),
    path("api/", include("apps.feedback.api_urls")),
    path("api/", include("apps.workshops.api_urls")),
    path("api/", include("apps.dataspaces.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start script as a file (?script): no inline script, so the
    # docs work under the portal's Content-Security-Policy.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler404 = "iliad_portal.api_errors.page_not_found"
