from django.urls import path

from apps.gallery import views

urlpatterns = [
    path("templates/", views.gallery, name="gallery"),
    path("templates/<slug:slug>/use/", views.use_template, name="gallery-use"),
]
