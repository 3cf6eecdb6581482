"""Error notebook API, files: import (multipart upload), export, and the near-duplicate job."""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.models import DedupJob, ImportJob
from datasets_app.selectors import CaseFilters
from datasets_app.services.dedup import dedup_job_create
from datasets_app.services.export import export_csv, export_jsonl
from datasets_app.services.imports import import_job_create
from llmops.api_errors import error_body


class ImportOutput(serializers.ModelSerializer):
    class Meta:
        model = ImportJob
        fields = ["id", "status", "filename", "size_bytes", "file_format", "encoding", "dry_run", "skip_invalid",
                  "scrub_pii", "progress", "progress_message", "lines_read", "imported", "duplicates",
                  "invalid_lines", "problems", "preview", "pii_found", "error", "created_at", "finished_at"]  # fmt: skip


class ImportCreateApi(APIView):
    required_permission = "cases.edit"
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        dry_run = serializers.BooleanField(default=False)
        skip_invalid = serializers.BooleanField(default=False)
        scrub_pii = serializers.BooleanField(default=settings.PII_SCRUB_DEFAULT)

    @extend_schema(request=InputSerializer, responses={201: ImportOutput, 202: ImportOutput},
                   summary="Import a JSONL or CSV file (201 when done inline, 202 when queued)")  # fmt: skip
    def post(self, request):
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.UPLOAD_MAX_BYTES + 64 * 1024:
            body = error_body(
                413, "too_large", f"the upload is {length} bytes; the limit is {settings.UPLOAD_MAX_BYTES}"
            )
            return Response(body, status=413)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        try:
            job = import_job_create(user=request.user, upload=fields.pop("file"), **fields)
        except DjangoValidationError as exc:
            return Response(error_body(400, "invalid", "Invalid input.", exc.message_dict), status=400)
        code = status.HTTP_201_CREATED if job.is_terminal else status.HTTP_202_ACCEPTED
        return Response(ImportOutput(job).data, status=code)


class ImportDetailApi(APIView):
    required_permission = "cases.view"

    @extend_schema(responses=ImportOutput, summary="An import's status and report")
    def get(self, request, pk: int):
        return Response(ImportOutput(get_object_or_404(ImportJob, pk=pk)).data)


class ExportApi(APIView):
    required_permission = "cases.view"

    def perform_content_negotiation(self, request, force=False):
        # ?format= names the file format here; DRF would read it as a renderer name and answer 404 for csv/jsonl.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["jsonl", "csv"]),
                               OpenApiParameter("tag", str), OpenApiParameter("product", str)],
                   responses={(200, "application/x-ndjson"): str}, summary="Approved cases as JSONL or CSV")  # fmt: skip
    def get(self, request):
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in ("jsonl", "csv"):
            return Response(error_body(400, "invalid", "format: choose jsonl or csv"), status=400)
        filters = CaseFilters(
            tag=request.query_params.get("tag", ""), product=request.query_params.get("product", "")
        )
        produce = export_jsonl if fmt == "jsonl" else export_csv
        response = StreamingHttpResponse(
            produce(filters), content_type="text/csv" if fmt == "csv" else "application/x-ndjson"
        )
        response["Content-Disposition"] = f'attachment; filename="approved-cases.{fmt}"'
        return response


class DedupJobOutput(serializers.ModelSerializer):
    class Meta:
        model = DedupJob
        fields = ["id", "status", "threshold", "progress", "progress_message", "groups_found", "cases_grouped",
                  "error", "created_at", "finished_at"]  # fmt: skip


class NearDuplicatesApi(APIView):
    required_permission = "cases.edit"

    class InputSerializer(serializers.Serializer):
        threshold = serializers.FloatField(min_value=0.1, max_value=1.0, default=settings.NEAR_DUP_THRESHOLD)

    @extend_schema(
        request=InputSerializer, responses={202: DedupJobOutput}, summary="Group near-duplicate cases"
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            job = dedup_job_create(user=request.user, threshold=data.validated_data["threshold"])
        except DjangoValidationError as exc:
            return Response(error_body(400, "invalid", "Invalid input.", exc.message_dict), status=400)
        return Response(DedupJobOutput(job).data, status=status.HTTP_202_ACCEPTED)
