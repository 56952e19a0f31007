from django.contrib import admin

from apps.pipelines.models import Pipeline, PipelineVersion

admin.site.register(Pipeline)
admin.site.register(PipelineVersion)
