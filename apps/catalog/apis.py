"""Catalog API: what blocks exist, their versions, ports and parameter schemas."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.selectors import block_versions, blocks_latest
from apps.catalog.serializers import BlockDetailSerializer, BlockSummarySerializer


class BlockListApi(APIView):
    @extend_schema(
        responses=BlockSummarySerializer(many=True),
        parameters=[OpenApiParameter("category", str, description="Only blocks of this category.")],
    )
    def get(self, request):
        entries = blocks_latest()
        category = request.query_params.get("category")
        if category:
            entries = [entry for entry in entries if entry["latest"].category == category]
        return Response(BlockSummarySerializer(entries, many=True).data)


class BlockDetailApi(APIView):
    @extend_schema(responses=BlockDetailSerializer)
    def get(self, request, block_id: str):
        versions = block_versions(block_id=block_id)  # a NUL in the path is refused before (api_errors)
        if not versions:
            raise NotFound(f"no block with id {block_id!r}")
        latest = next((row.version for row in versions if row.available), versions[0].version)
        return Response(BlockDetailSerializer({"id": block_id, "latest": latest, "versions": versions}).data)
