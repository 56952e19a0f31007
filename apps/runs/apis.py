"""Run API: start a run of a pipeline, follow it, cancel it, read its events, download artifacts."""

from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.pipelines.apis import REFUSED, get_visible_pipeline, invalid_response
from apps.pipelines.serializers import PipelineInvalidSerializer
from apps.pipelines.services import PipelineInvalid
from apps.projects.access import can
from apps.runs import store as artifact_store
from apps.runs.downloads import StreamedFileResponse, is_table, table_head
from apps.runs.models import Artifact, Run, RunState
from apps.runs.selectors import EVENTS_PAGE_MAX, run_events, run_get, runs_visible_to
from apps.runs.serializers import (
    RunCreateSerializer,
    RunDetailSerializer,
    RunRerunSerializer,
    RunSerializer,
    TableHeadSerializer,
)
from apps.runs.services import RunRejected, run_cancel, run_rerun, run_retry, run_submit
from blocks.store import StoreError
from blocks.types import PORT_TYPES
from iliad_portal.api_pagination import StrictLimitOffsetPagination
from iliad_portal.broker import require_broker


class StoreUnavailable(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "the artifact store did not answer; try again in a moment"
    default_code = "artifact_store_unavailable"


def get_visible_run(request, run_id: int) -> Run:
    run = run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    return run


def run_detail_data(run: Run) -> dict:
    run = (
        Run.objects.select_related("owner")
        .prefetch_related("steps", Prefetch("artifacts", queryset=Artifact.objects.select_related("step")))
        .get(pk=run.pk)
    )
    return RunDetailSerializer(run).data


def _paginated_runs(request, view, queryset):
    state = request.query_params.get("state")
    if state is not None:
        if state not in RunState.values:
            raise ValidationError({"state": f"unknown state {state!r}; one of {', '.join(RunState.values)}"})
        queryset = queryset.filter(state=state)
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset.select_related("owner"), request, view=view)
    return paginator.get_paginated_response(RunSerializer(page, many=True).data)


STATE_PARAMETER = OpenApiParameter("state", str, enum=RunState.values, description="Only runs in this state.")


def _delivery_target(user, value):
    """(space, folder) of a run submission's ``delivery``, or None; a 400 naming the field."""
    if not value:
        return None
    from apps.delivery.services import DeliveryRejected, delivery_target

    try:
        return delivery_target(user=user, space=value["space"], folder=value.get("folder", ""))
    except DeliveryRejected as error:
        raise ValidationError({"delivery": {error.field: [str(error)]}}) from None


def _space_issues(pipeline, user, version: int | None) -> list[dict]:
    """With an API token restricted to a project: issues of the version's ``space:`` parameters naming
    spaces outside that project (the worker reads with the owner's rights, which the token narrows
    only here). Otherwise none: the worker refuses spaces the owner may not read when the step runs.
    An unknown version is left to ``run_submit``."""
    from apps.dataspaces.selectors import space_reference_issues
    from apps.pipelines.selectors import pipeline_version_get

    if getattr(user, "token_project_id", None) is None:
        return []
    pipeline_version = pipeline_version_get(pipeline=pipeline, number=version)
    return space_reference_issues(pipeline_version.document, user) if pipeline_version else []


class PipelineRunsApi(APIView):
    pagination_class = StrictLimitOffsetPagination  # also documents limit and offset in the schema

    @extend_schema(responses=RunSerializer(many=True), parameters=[STATE_PARAMETER])
    def get(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id)
        return _paginated_runs(request, self, runs_visible_to(user=request.user).filter(pipeline=pipeline))

    @extend_schema(
        request=RunCreateSerializer,
        responses={
            201: RunDetailSerializer,
            400: PipelineInvalidSerializer,
            409: OpenApiResponse(description="Your stored results are over ILIAD_LIMIT_STORAGE_MB."),
        },
    )
    def post(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id, action="run")
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        delivery = _delivery_target(request.user, data.validated_data.get("delivery"))
        refused = _space_issues(pipeline, request.user, data.validated_data.get("version"))
        if refused:
            return invalid_response(PipelineInvalid(refused))
        require_broker()  # 503 while the broker is down, rather than a run that waits for re-dispatch
        try:
            with transaction.atomic():  # the run and its delivery together (tasks go out on commit)
                run = run_submit(
                    pipeline=pipeline,
                    user=request.user,
                    version=data.validated_data.get("version"),
                    target=data.validated_data["target"] or None,
                    cache=data.validated_data["cache"],
                )
                if delivery is not None:
                    from apps.delivery.services import delivery_request

                    delivery_request(run=run, user=request.user, space=delivery[0], folder=delivery[1])
        except PipelineInvalid as error:
            return invalid_response(error)
        except RunRejected as error:
            raise ValidationError({"detail": str(error)}) from error
        return Response(run_detail_data(run), status=status.HTTP_201_CREATED)


class RunListApi(APIView):
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(responses=RunSerializer(many=True), parameters=[STATE_PARAMETER])
    def get(self, request):
        return _paginated_runs(request, self, runs_visible_to(user=request.user))


class RunDetailApi(APIView):
    @extend_schema(responses=RunDetailSerializer)
    def get(self, request, run_id: int):
        return Response(run_detail_data(get_visible_run(request, run_id)))


class RunCancelApi(APIView):
    @extend_schema(
        request=None,
        responses={
            200: RunDetailSerializer,
            409: OpenApiResponse(description="The run has already finished."),
        },
    )
    def post(self, request, run_id: int):
        run = get_visible_run(request, run_id)
        if not can(request.user, "cancel", run):
            raise PermissionDenied(
                "you may see this run but not cancel it (its starter and its project's owners and "
                "editors may)"
            )
        try:
            run = run_cancel(run=run)
        except RunRejected as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(run_detail_data(run))


RUN_AGAIN_RESPONSES = {
    201: RunDetailSerializer,
    400: PipelineInvalidSerializer,
    403: OpenApiResponse(
        description="You may see the run but not run (or, to change parameters, edit) its pipeline."
    ),
    409: OpenApiResponse(description="The run cannot be run again this way (see detail)."),
}


def _runnable_pipeline_of(request, run: Run, *, edit: bool) -> None:
    """403 unless the user may run the run's pipeline (and edit it, to save changed parameters)."""
    if run.pipeline is None:
        return  # the service refuses it with a 409 that says why
    for action in ("run", "edit") if edit else ("run",):
        if not can(request.user, action, run.pipeline):
            raise PermissionDenied(REFUSED[action])


class RunRerunApi(APIView):
    @extend_schema(request=RunRerunSerializer, responses=RUN_AGAIN_RESPONSES)
    def post(self, request, run_id: int):
        """Run the run's pipeline again from one node: the steps upstream of it reuse this run's
        results, the node and everything downstream execute (with changed parameters, if given)."""
        run = get_visible_run(request, run_id)
        data = RunRerunSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _runnable_pipeline_of(request, run, edit=bool(data.validated_data["params"]))
        if getattr(request.user, "token_project_id", None) is not None:
            from apps.dataspaces.selectors import space_reference_issues

            changed = data.validated_data["params"]
            nodes = [
                {**node, "params": {**(node.get("params") or {}), **changed.get(node.get("id"), {})}}
                for node in (run.snapshot.get("document") or {}).get("nodes") or []
            ]
            refused = space_reference_issues({"nodes": nodes}, request.user)
            if refused:
                return invalid_response(PipelineInvalid(refused))
        require_broker()
        try:
            new_run = run_rerun(
                run=run,
                user=request.user,
                from_node=data.validated_data["from"],
                params=data.validated_data["params"],
                cache=data.validated_data["cache"],
            )
        except PipelineInvalid as error:
            return invalid_response(error)
        except RunRejected as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(run_detail_data(new_run), status=status.HTTP_201_CREATED)


class RunRetryApi(APIView):
    @extend_schema(
        request=None,
        responses={
            **RUN_AGAIN_RESPONSES,
            400: OpenApiResponse(
                description="The pipeline version no longer validates against the catalog "
                "(its issues are under errors)."
            ),
        },
    )
    def post(self, request, run_id: int):
        """Retry a failed run: a new run reuses its succeeded steps' results and executes its failed
        steps and everything after them."""
        run = get_visible_run(request, run_id)
        _runnable_pipeline_of(request, run, edit=False)
        require_broker()
        try:
            new_run = run_retry(run=run, user=request.user)
        except PipelineInvalid as error:
            return invalid_response(error)
        except RunRejected as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(run_detail_data(new_run), status=status.HTTP_201_CREATED)


class RunEventsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0},
                description="Only events with a sequence number above this.",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": EVENTS_PAGE_MAX},
                description=f"At most this many (default and maximum {EVENTS_PAGE_MAX}).",
            ),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, run_id: int):
        run = get_visible_run(request, run_id)
        try:
            after = int(request.query_params.get("after", 0))
            limit = int(request.query_params.get("limit", EVENTS_PAGE_MAX))
        except ValueError:
            raise ValidationError({"detail": "after and limit must be integers"}) from None
        if after < 0 or not 1 <= limit <= EVENTS_PAGE_MAX:
            bounds = f"after must be at least 0 and limit 1 to {EVENTS_PAGE_MAX}"
            raise ValidationError({"detail": f"{bounds}, not {after} and {limit}"})
        events = [event.as_dict() for event in run_events(run_id=run.pk, after=after, limit=limit)]
        return Response({"run": run.pk, "state": run.state, "last_seq": run.last_event_seq, "events": events})


#: Media types an artifact may be shown inline with, always under exactly this type and never sniffed:
#: what the run page previews. Any other artifact is downloaded.
INLINE_MEDIA_TYPES = frozenset(
    {"image/png", "text/csv", "application/json", "application/geo+json", "application/vnd.plotly.v1+json"}
)
HTML_MEDIA_TYPE = "text/html"
#: A user's HTML page (e.g. a bokeh explorer) keeps its scripts but gets an opaque origin, so it never
#: acts with the portal's session, CSRF token or same-origin API access. No allow-same-origin, ever.
HTML_SANDBOX_POLICY = "sandbox allow-scripts"
#: Everything else is inert data: should a browser ever render it, it renders without any privilege.
DATA_SANDBOX_POLICY = "sandbox"


def safe_download_name(name: str, fallback: str) -> str:
    """``name`` reduced to ASCII letters, digits, ``.``, ``_`` and ``-``, not starting with a dot (or
    ``fallback`` if nothing is left): safe in a Content-Disposition header and on every file system."""
    name = "".join(char if char.isascii() and (char.isalnum() or char in "._-") else "_" for char in name)
    return name.lstrip(".") or fallback


def artifact_file(request, run_id: int, artifact_id: int):
    """(artifact, its file on this machine) of a run the user may see; 404 for an unknown artifact or a
    missing file, 502 when the object store does not answer."""
    run = get_visible_run(request, run_id)
    artifact = Artifact.objects.select_related("step").filter(run=run, pk=artifact_id).first()
    if artifact is None:
        raise Http404("no such artifact in this run")
    try:
        path = artifact_store.served_artifact_path(artifact.uri)  # from the object store if only there
    except StoreError:
        raise StoreUnavailable() from None
    if path is None:
        raise Http404("artifact file is missing")
    return artifact, path


class ArtifactDownloadApi(APIView):
    @extend_schema(
        # The artifact's own media type: one of the port types', or octet-stream when it has none.
        responses={
            (200, media_type): OpenApiTypes.BINARY
            for media_type in sorted({port_type.media_type for port_type in PORT_TYPES.values()})
            + ["application/octet-stream"]
        },
        parameters=[
            OpenApiParameter(
                "inline",
                str,
                enum=["1"],
                description=(
                    "1: show it in the browser instead of downloading it, when its type can be shown "
                    "safely: an HTML page (in a script sandbox without the portal's origin), PNG, CSV, "
                    "JSON, GeoJSON or a plotly figure. Other types are always downloaded."
                ),
            )
        ],
    )
    def get(self, request, run_id: int, artifact_id: int):
        if request.query_params.get("inline", "1") != "1":
            raise ValidationError({"inline": "1 to show the artifact in the browser, or leave it out"})
        artifact, path = artifact_file(request, run_id, artifact_id)
        media_type = artifact.media_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
        is_html = media_type == HTML_MEDIA_TYPE
        inline = request.query_params.get("inline") == "1" and (is_html or media_type in INLINE_MEDIA_TYPES)
        response = StreamedFileResponse(
            open(path, "rb"),  # noqa: SIM115 - the response closes it
            as_attachment=not inline,
            filename=safe_download_name(f"{artifact.step.node_id}-{path.name}", f"artifact-{artifact.pk}"),
            content_type=media_type,
        )
        response["X-Content-Type-Options"] = "nosniff"
        # Set here, so a site-wide CSP middleware (django-csp leaves a response that has one alone)
        # cannot replace it.
        response["Content-Security-Policy"] = HTML_SANDBOX_POLICY if is_html else DATA_SANDBOX_POLICY
        if is_html:
            response["X-Frame-Options"] = "SAMEORIGIN"  # the run page previews it in a sandboxed iframe
        return response


TABLE_ROWS_MAX = 100


class ArtifactRowsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": TABLE_ROWS_MAX},
                description=f"At most this many rows (default 10, maximum {TABLE_ROWS_MAX}).",
            )
        ],
        responses=TableHeadSerializer,
    )
    def get(self, request, run_id: int, artifact_id: int):
        """The column names and first rows of a table result (CSV), for a preview. Reads at most 1 MiB
        of the file and cuts long cells."""
        unknown = sorted(set(request.query_params) - {"limit"})
        if unknown:
            raise ValidationError(
                {"detail": f"unknown query parameter {', '.join(map(repr, unknown))}; only limit"}
            )
        try:
            limit = int(request.query_params.get("limit", 10))
        except ValueError:
            raise ValidationError({"limit": "an integer from 1 to 100"}) from None
        if not 1 <= limit <= TABLE_ROWS_MAX:
            raise ValidationError({"limit": f"from 1 to {TABLE_ROWS_MAX}, not {limit}"})
        artifact, path = artifact_file(request, run_id, artifact_id)
        if not is_table(artifact.media_type):
            raise ValidationError(
                {"artifact": f"is {artifact.media_type or 'untyped'}, not a table (text/csv)"}
            )
        return Response(table_head(path, limit))
