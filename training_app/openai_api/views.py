"""The /v1/ endpoints: short DRF views that authorise (a portal API token; the role matrix), call one service or
selector and answer OpenAI's objects. Left out of the portal's own OpenAPI schema: OpenAI documents these."""

from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.models import DatasetVersion
from llmops.auth import ApiTokenAuthentication
from llmops.jobs import IllegalTransition, job_cancel
from training_app.models import FineTuneJob, MetricPoint
from training_app.openai_api import errors
from training_app.openai_api.events import job_events
from training_app.openai_api.files import openai_file_create
from training_app.openai_api.jobs import openai_job_create
from training_app.openai_api.objects import (
    JOB_PREFIX,
    checkpoint_object,
    file_object,
    file_version,
    fine_tune_job,
    job_object,
    number_of,
)  # fmt: skip
from training_app.selectors import job_checkpoints

MAX_LIMIT = 100


@extend_schema(exclude=True)
class OpenAIApi(APIView):
    authentication_classes = [ApiTokenAuthentication]
    parser_classes = [JSONParser]

    def get_exception_handler(self):
        return errors.exception_handler


def _limit(request, default: int = 20) -> int:
    raw = request.query_params.get("limit", default)
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise errors.invalid([("limit", f"must be a whole number from 1 to {MAX_LIMIT} (got {raw!r})")])
    return limit


def _page(request, rows, prefix: str, to_object) -> Response:
    """A cursor page of rows ordered newest first by id: ``after`` = the id of the last row of the previous page."""
    limit, after = _limit(request), request.query_params.get("after")
    if after:
        pk = number_of(after, prefix)
        if pk is None:
            raise errors.invalid([("after", f"must be an id like {prefix}1 (got {after!r})")])
        rows = rows.filter(pk__lt=pk)
    found = list(rows.order_by("-pk")[: limit + 1])
    return _list([to_object(row) for row in found[:limit]], has_more=len(found) > limit)


def _list(data: list[dict], has_more: bool = False) -> Response:
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return Response(
        {"object": "list", "data": data, "has_more": has_more, "first_id": first, "last_id": last}
    )


class FilesApi(OpenAIApi):
    required_permission = {"GET": "datasets.view", "POST": "datasets.build"}
    parser_classes = [MultiPartParser, FormParser]

    def get(self, request):
        purpose = request.query_params.get("purpose")
        rows = DatasetVersion.objects.select_related("dataset").filter(dataset__task_type="chat")
        if purpose not in (None, "", "fine-tune"):
            rows = rows.none()
        return _page(request, rows, "file-", file_object)

    def post(self, request):
        upload = request.FILES.get("file")
        version = openai_file_create(user=request.user, upload=upload, purpose=request.data.get("purpose"))
        return Response(file_object(version))


class FileApi(OpenAIApi):
    required_permission = "datasets.view"

    def get(self, request, file_id: str):
        return Response(file_object(file_version(file_id)))


class JobsApi(OpenAIApi):
    required_permission = {"GET": "training.view", "POST": "training.submit"}

    def get(self, request):
        rows = FineTuneJob.objects.select_related("base__model", "result_version__model")
        return _page(request, rows, JOB_PREFIX, job_object)

    def post(self, request):
        job = openai_job_create(user=request.user, data=request.data)
        return Response(job_object(fine_tune_job(f"{JOB_PREFIX}{job.pk}")))


class JobApi(OpenAIApi):
    required_permission = "training.view"

    def get(self, request, job_id: str):
        return Response(job_object(fine_tune_job(job_id)))


class JobEventsApi(OpenAIApi):
    required_permission = "training.view"

    def get(self, request, job_id: str):
        job = fine_tune_job(job_id)
        events, has_more = job_events(job, request.query_params.get("after"), _limit(request))
        return _list(events, has_more)


class JobCheckpointsApi(OpenAIApi):
    required_permission = "training.view"

    def get(self, request, job_id: str):
        job, limit, after = fine_tune_job(job_id), _limit(request, 10), request.query_params.get("after")
        rows = [row for row in job_checkpoints(job) if isinstance(row["step"], int)]
        if after:
            ids = [f"ftckpt-{job.pk}-{row['step']}" for row in rows]
            if after not in ids:
                raise errors.invalid([("after", f"{after!r} is not a checkpoint of {JOB_PREFIX}{job.pk}")])
            rows = rows[ids.index(after) + 1 :]
        data = [checkpoint_object(job, row, _losses_at(job, row["step"])) for row in rows[:limit]]
        return _list(data, has_more=len(rows) > limit)


def _losses_at(job: FineTuneJob, step: int) -> dict:
    names = {"train_loss": "train_loss", "val_loss": "valid_loss"}
    points = MetricPoint.objects.filter(job=job, step=step, name__in=names).values_list("name", "value")
    return {names[name]: value for name, value in points}


class JobCancelApi(OpenAIApi):
    required_permission = "training.submit"

    def post(self, request, job_id: str):
        job = fine_tune_job(job_id)
        try:
            job_cancel(model=FineTuneJob, job_id=job.pk)
        except IllegalTransition as e:
            message = f"{JOB_PREFIX}{job.pk} has already {job.status}; only a queued or running job can be cancelled"
            raise errors.OpenAIError(
                400, message, param="fine_tuning_job_id", code="job_not_cancellable"
            ) from e
        return Response(job_object(fine_tune_job(job_id)))
