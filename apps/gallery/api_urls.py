from django.urls import path

from apps.gallery import apis

urlpatterns = [
    path("templates/", apis.TemplateListApi.as_view(), name="api-templates"),
    path("templates/<slug:slug>/", apis.TemplateDetailApi.as_view(), name="api-template-detail"),
    path("templates/<slug:slug>/use/", apis.TemplateUseApi.as_view(), name="api-template-use"),
]
