"""Compute target API: every signed-in user lists the targets they may use (staff: all of them);
staff create, change and delete them. Secret options are write-only."""

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.compute.models import ComputeTarget
from apps.compute.selectors import step_counts_by_target, targets_usable_by
from apps.compute.serializers import ComputeTargetSerializer, ComputeTargetWriteSerializer
from apps.compute.services import TargetBusy, TargetInvalid, target_delete, target_save
from iliad_portal.api_pagination import StrictLimitOffsetPagination

STAFF_ONLY = "Only staff may create, change or delete compute targets."


def _visible(user):
    """Staff see every target (to manage them); others the ones they may use."""
    if user.is_staff:
        return ComputeTarget.objects.select_related("overflow")
    return targets_usable_by(user=user).select_related("overflow")


def _require_staff(request) -> None:
    if not request.user.is_staff:
        raise PermissionDenied(STAFF_ONLY)


def _data(request, targets, *, many: bool = False):
    names = [target.name for target in (targets if many else [targets])]
    context = {"request": request, "counts": step_counts_by_target(names)}
    return ComputeTargetSerializer(targets, many=many, context=context).data


def _save(request, *, target: ComputeTarget | None, partial: bool) -> ComputeTarget:
    """Validate the body's shape (so that a malformed request is told which field is wrong), then
    require staff, then save."""
    data = ComputeTargetWriteSerializer(data=request.data, partial=partial)
    data.is_valid(raise_exception=True)
    _require_staff(request)
    fields = dict(data.validated_data)
    secrets = fields.pop("secrets", None)
    if fields.get("overflow") is not None:
        overflow = ComputeTarget.objects.filter(name=fields["overflow"]).first()
        if overflow is None:
            raise ValidationError({"overflow": [f"there is no compute target called {fields['overflow']!r}"]})
        fields["overflow"] = overflow
    try:
        return target_save(target=target, fields=fields, secrets=secrets)
    except TargetInvalid as error:
        raise ValidationError({field: [message] for field, message in error.errors.items()}) from error


class ComputeTargetListApi(APIView):
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(responses=ComputeTargetSerializer(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(_visible(request.user), request, view=self)
        return paginator.get_paginated_response(_data(request, page, many=True))

    @extend_schema(
        request=ComputeTargetWriteSerializer,
        responses={201: ComputeTargetSerializer, 403: OpenApiResponse(description=STAFF_ONLY)},
    )
    def post(self, request):
        target = _save(request, target=None, partial=False)
        return Response(_data(request, target), status=status.HTTP_201_CREATED)


class ComputeTargetDetailApi(APIView):
    def _target(self, request, target_name: str) -> ComputeTarget:
        target = _visible(request.user).filter(name=target_name).first()
        if target is None:
            raise Http404("no such compute target (or not one you may use)")
        return target

    @extend_schema(responses=ComputeTargetSerializer)
    def get(self, request, target_name: str):
        return Response(_data(request, self._target(request, target_name)))

    @extend_schema(
        request=ComputeTargetWriteSerializer,
        responses={200: ComputeTargetSerializer, 403: OpenApiResponse(description=STAFF_ONLY)},
    )
    def patch(self, request, target_name: str):
        target = self._target(request, target_name)
        return Response(_data(request, _save(request, target=target, partial=True)))

    @extend_schema(
        responses={
            204: None,
            403: OpenApiResponse(description=STAFF_ONLY),
            409: OpenApiResponse(description="The target still has steps waiting or running."),
        }
    )
    def delete(self, request, target_name: str):
        target = self._target(request, target_name)
        _require_staff(request)
        try:
            target_delete(target=target)
        except TargetBusy as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)
