"""WebSocket URL routes."""

from django.urls import path

from apps.collab.consumers import CommentEventsConsumer, PipelineDocConsumer
from apps.runs.consumers import RunEventsConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunEventsConsumer.as_asgi()),
    # y-websocket appends the room (the pipeline id) to the URL it is given
    path("ws/collab/pipelines/<int:pipeline_id>", PipelineDocConsumer.as_asgi()),
    path("ws/collab/pipelines/<int:pipeline_id>/comments", CommentEventsConsumer.as_asgi()),
]
