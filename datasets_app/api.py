"""Error notebook API: cases (one, bulk up to 10k, with Idempotency-Key), edits, workflow, comments."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.models import CaseStatus, ErrorCase, Severity, Source, Tag, TaskType
from datasets_app.selectors import CaseFilters, case_page
from datasets_app.services import cases as case_services
from datasets_app.services.ingest import Ingestor
from datasets_app.services.prepare import Scrubber
from llmops.api_errors import error_body
from llmops.idempotency import idempotent

BULK_MAX = 10_000
API_SOURCES = [Source.USER_FEEDBACK, Source.MONITORING, Source.MANUAL, Source.API]


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField(trim_whitespace=False)


def normalise_tag(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


class CaseInput(serializers.Serializer):
    messages = MessageSerializer(many=True, allow_empty=False)
    bad_output = serializers.CharField(trim_whitespace=False)
    expected_output = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False
    )
    task_type = serializers.ChoiceField(choices=TaskType.choices, default=TaskType.CHAT)
    tags = serializers.ListField(child=serializers.CharField(), default=list)
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.MEDIUM)
    source = serializers.ChoiceField(choices=API_SOURCES, default=Source.API)
    product = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    feature = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    model_version = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    metadata = serializers.DictField(required=False, default=dict)

    def validate_messages(self, value):
        if not any(m["role"] == "user" for m in value):
            raise serializers.ValidationError("the conversation needs at least one user turn")
        if value[-1]["role"] != "user":
            raise serializers.ValidationError(
                "the conversation must end with the user turn the bad answer replied to"
            )
        return value

    def validate_tags(self, value):
        names = [normalise_tag(t) for t in value]
        unknown = sorted(set(names) - self.context["known_tags"])
        if unknown:
            raise serializers.ValidationError(
                f"unknown tag(s): {', '.join(unknown)} (admins manage the taxonomy)"
            )
        return names


def known_tags() -> set[str]:
    return set(Tag.objects.filter(is_active=True).values_list("name", flat=True))


class CaseOutput(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    assignee = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = ErrorCase
        fields = [
            "id", "messages", "bad_output", "expected_output", "task_type", "tags", "severity", "source", "product",
            "feature", "model_version", "status", "rejection_reason", "assignee", "metadata", "flags", "fingerprint",
            "near_dup_group", "merged_into", "version", "created_at", "updated_at",
        ]  # fmt: skip


def _service_error(exc: Exception, code: int = 400) -> Response:
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(error_body(code, "invalid", "Invalid input.", fields), status=code)
    return Response(error_body(code, "conflict", str(exc)), status=code)


FILTER_PARAMS = [OpenApiParameter(n, str) for n in ("status", "tag", "severity", "source", "product", "q")]


class CaseListCreateApi(APIView):
    required_permission = {"GET": "cases.view", "POST": "cases.edit"}

    @extend_schema(
        parameters=[*FILTER_PARAMS, OpenApiParameter("after", int)], responses=CaseOutput(many=True)
    )
    def get(self, request):
        params = request.query_params
        filters = CaseFilters(
            **{k: params.get(k, "") for k in ("status", "tag", "severity", "source", "product", "q")}
        )
        after = params.get("after")
        page = case_page(filters, after=int(after) if after and after.isdigit() else None)
        return Response({"results": CaseOutput(page.cases, many=True).data, "next_after": page.next_after})

    @extend_schema(
        request=CaseInput, responses={201: CaseOutput}, summary="Create one case (Idempotency-Key honoured)"
    )
    def post(self, request):
        return idempotent(request, "cases.create", lambda: self._create(request))

    def _create(self, request) -> Response:
        data = CaseInput(data=request.data, context={"known_tags": known_tags()})
        data.is_valid(raise_exception=True)
        try:
            case = case_services.case_create(user=request.user, **data.validated_data)
        except case_services.DuplicateCase as exc:
            body = error_body(409, "duplicate", str(exc))
            body["error"]["existing_id"] = exc.existing_id
            return Response(body, status=409)
        return Response(CaseOutput(case).data, status=status.HTTP_201_CREATED)


class CaseBulkCreateApi(APIView):
    required_permission = "cases.edit"

    class InputSerializer(serializers.Serializer):
        cases = serializers.ListField(child=serializers.DictField(), allow_empty=False, max_length=BULK_MAX)

    class OutputSerializer(serializers.Serializer):
        created = serializers.ListField(
            child=serializers.IntegerField(), help_text="New case ids, in input order."
        )
        duplicates = serializers.ListField(
            child=serializers.DictField(), help_text="[{index, reason}] skipped."
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        summary=f"Create up to {BULK_MAX} cases atomically",
    )
    def post(self, request):
        return idempotent(request, "cases.bulk_create", lambda: self._create(request))

    def _create(self, request) -> Response:
        outer = self.InputSerializer(data=request.data)
        outer.is_valid(raise_exception=True)
        context = {"known_tags": known_tags()}
        rows, problems = [], {}
        for index, item in enumerate(outer.validated_data["cases"]):
            one = CaseInput(data=item, context=context)
            if one.is_valid():
                rows.append((index, one.validated_data))
            else:
                problems[str(index)] = one.errors
        if problems:
            fields = {"cases": problems}
            return Response(
                error_body(400, "invalid", f"{len(problems)} case(s) are invalid; none was created.", fields),
                status=400,
            )
        with transaction.atomic():
            ingest = Ingestor(
                user_id=request.user.pk, source=Source.API, scrubber=Scrubber.from_database(), unit="item"
            )
            for index, fields in rows:
                fields = dict(fields)
                fields.pop("source")
                ingest.add(index, **fields)
            stats = ingest.finish()
        duplicates = [{"index": key, "reason": why} for key, why in stats.duplicates]
        return Response(
            {"created": ingest.created_ids, "duplicates": duplicates}, status=status.HTTP_201_CREATED
        )


class CaseEditInput(serializers.Serializer):
    version = serializers.IntegerField(help_text="The version you read; a newer one on the server → 409.")
    expected_output = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    task_type = serializers.ChoiceField(choices=TaskType.choices, required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)
    product = serializers.CharField(required=False, allow_blank=True, max_length=100)
    feature = serializers.CharField(required=False, allow_blank=True, max_length=100)
    model_version = serializers.CharField(required=False, allow_blank=True, max_length=200)
    metadata = serializers.DictField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)

    validate_tags = CaseInput.validate_tags


class CaseDetailApi(APIView):
    required_permission = {"GET": "cases.view", "PATCH": "cases.edit"}

    @extend_schema(responses=CaseOutput)
    def get(self, request, pk: int):
        return Response(CaseOutput(get_object_or_404(ErrorCase, pk=pk)).data)

    @extend_schema(request=CaseEditInput, responses={200: CaseOutput, 409: None}, summary="Edit a case")
    def patch(self, request, pk: int):
        case = get_object_or_404(ErrorCase, pk=pk)
        data = CaseEditInput(data=request.data, context={"known_tags": known_tags()})
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        version = changes.pop("version")
        try:
            case = case_services.case_update(
                case_id=case.pk, user=request.user, version=version, changes=changes
            )
        except case_services.StaleEdit as exc:
            return _service_error(exc, 409)
        except DjangoValidationError as exc:
            return _service_error(exc)
        return Response(CaseOutput(case).data)


class StatusInput(serializers.Serializer):
    version = serializers.IntegerField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="")


def _move(request, pk: int, new_status: str) -> Response:
    case = get_object_or_404(ErrorCase, pk=pk)
    data = StatusInput(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        case = case_services.case_set_status(
            case_id=case.pk, user=request.user, status=new_status, **data.validated_data
        )
    except case_services.StaleEdit as exc:
        return _service_error(exc, 409)
    except DjangoValidationError as exc:
        return _service_error(exc)
    return Response(CaseOutput(case).data)


class CaseStatusApi(APIView):
    required_permission = "cases.edit"

    class InputSerializer(StatusInput):
        status = serializers.ChoiceField(choices=[CaseStatus.NEW, CaseStatus.TRIAGED, CaseStatus.CORRECTED])

    @extend_schema(
        request=InputSerializer, responses=CaseOutput, summary="Move a case to new, triaged or corrected"
    )
    def post(self, request, pk: int):
        choice = self.InputSerializer(data=request.data)
        choice.is_valid(raise_exception=True)
        return _move(request, pk, choice.validated_data["status"])


class CaseApproveApi(APIView):
    required_permission = "cases.approve"

    @extend_schema(request=StatusInput, responses=CaseOutput, summary="Approve a corrected case")
    def post(self, request, pk: int):
        return _move(request, pk, CaseStatus.APPROVED)


class CaseRejectApi(APIView):
    required_permission = "cases.approve"

    @extend_schema(request=StatusInput, responses=CaseOutput, summary="Reject a case (a reason is required)")
    def post(self, request, pk: int):
        return _move(request, pk, CaseStatus.REJECTED)


class CaseCommentApi(APIView):
    required_permission = "cases.comment"

    class InputSerializer(serializers.Serializer):
        body = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={201: None}, summary="Comment on a case")
    def post(self, request, pk: int):
        case = get_object_or_404(ErrorCase, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = case_services.case_comment_add(
            case_id=case.pk, user=request.user, body=data.validated_data["body"]
        )
        return Response({"id": comment.pk, "body": comment.body}, status=status.HTTP_201_CREATED)
