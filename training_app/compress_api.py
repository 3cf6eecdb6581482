"""Compression API: list and submit (every problem of the settings in one 400 keyed by field), read one job with
its engine result, the benchmarks of source and result, their ratios and the quality from the comparison report,
and cancel. Permissions as the fine-tune API: everyone reads, data scientists and admins submit and cancel."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.models import DatasetVersion
from llmops.api_errors import error_body
from llmops.jobs import IllegalTransition, job_cancel
from registry_app.models import ModelVersion
from training_app.compress_selectors import benchmark_rows, compression_jobs
from training_app.models import CompressionJob, VersionBenchmark
from training_app.services.compress import compression_submit
from workers.compress.config import METHODS


class CompressionOutput(serializers.ModelSerializer):
    result_version = serializers.PrimaryKeyRelatedField(read_only=True)
    comparison = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = CompressionJob
        fields = ["id", "status", "progress", "progress_message", "error", "source", "method", "config",
                  "dataset_version", "student", "eval_dataset_version", "eval_split", "result", "result_version",
                  "comparison", "created_at", "started_at", "finished_at"]  # fmt: skip


class BenchmarkOutput(serializers.ModelSerializer):
    class Meta:
        model = VersionBenchmark
        fields = ["id", "version", "role", "hostname", "device", "size_bytes", "parameters", "peak_memory_bytes",
                  "p50_b1_ms", "p95_b1_ms", "p50_b8_ms", "p95_b8_ms", "throughput", "created_at"]  # fmt: skip


class RatiosOutput(serializers.Serializer):
    size_ratio = serializers.FloatField(allow_null=True, help_text="result / source bytes on disk")
    parameter_ratio = serializers.FloatField(allow_null=True)
    memory_ratio = serializers.FloatField(allow_null=True, help_text="result / source peak memory")
    speedup_b1 = serializers.FloatField(allow_null=True, help_text="source p50 / result p50 at batch 1")
    speedup_b8 = serializers.FloatField(allow_null=True, help_text="source p50 / result p50 at batch 8")
    throughput_ratio = serializers.FloatField(allow_null=True)


class QualityOutput(serializers.Serializer):
    metric = serializers.CharField(allow_null=True, help_text="accuracy (classifiers) or mean score")
    baseline = serializers.FloatField(allow_null=True, help_text="the source's primary score")
    candidate = serializers.FloatField(allow_null=True, help_text="the result's primary score")
    delta = serializers.FloatField(allow_null=True, help_text="candidate − baseline")
    unchanged = serializers.FloatField(allow_null=True, help_text="share of predictions unchanged")
    paired = serializers.IntegerField(help_text="examples paired by key for 'unchanged'")
    pending = serializers.BooleanField(help_text="the evaluation runs are still queued or running")
    report = serializers.IntegerField(source="report.pk", allow_null=True, default=None)
    baseline_run = serializers.IntegerField(source="baseline_run.pk", allow_null=True, default=None)
    candidate_run = serializers.IntegerField(source="candidate_run.pk", allow_null=True, default=None)


class CompressionDetailOutput(CompressionOutput):
    benchmarks = serializers.SerializerMethodField()
    ratios = serializers.SerializerMethodField()
    quality = serializers.SerializerMethodField()

    class Meta(CompressionOutput.Meta):
        fields = [*CompressionOutput.Meta.fields, "benchmarks", "ratios", "quality"]

    def _table(self, job) -> dict:
        if not hasattr(self, "_tables"):
            self._tables = {}
        if job.pk not in self._tables:
            self._tables[job.pk] = benchmark_rows(job)
        return self._tables[job.pk]

    @extend_schema_field(BenchmarkOutput(many=True))
    def get_benchmarks(self, job) -> list[dict]:
        benches = [row["bench"] for row in self._table(job)["rows"] if row["bench"] is not None]
        return BenchmarkOutput(benches, many=True).data

    @extend_schema_field(RatiosOutput)
    def get_ratios(self, job) -> dict:
        return RatiosOutput(self._table(job)["ratios"]).data

    @extend_schema_field(QualityOutput)
    def get_quality(self, job) -> dict:
        return QualityOutput(self._table(job)["quality"]).data


class CompressionListCreateApi(APIView):
    required_permission = {"GET": "training.view", "POST": "training.submit"}

    class CompressionInput(serializers.Serializer):
        source = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())
        method = serializers.CharField(help_text=f"one of {', '.join(METHODS)}")
        options = serializers.DictField(
            default=dict,
            help_text="engine settings (workers.compress.CompressConfig names): sparsity, steps, ...",
        )
        dataset_version = serializers.PrimaryKeyRelatedField(
            queryset=DatasetVersion.objects.all(), required=False, allow_null=True, default=None,
            help_text="training data of the recovery fine-tune or the distillation",
        )  # fmt: skip
        student = serializers.PrimaryKeyRelatedField(
            queryset=ModelVersion.objects.all(), required=False, allow_null=True, default=None
        )
        eval_dataset_version = serializers.PrimaryKeyRelatedField(
            queryset=DatasetVersion.objects.all(), required=False, allow_null=True, default=None,
            help_text="source and result are scored on it",
        )  # fmt: skip
        eval_split = serializers.CharField(default="test")

    @extend_schema(responses=CompressionOutput(many=True), summary="List compression jobs, newest first")
    def get(self, request):
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(CompressionJob.objects.order_by("-pk"), request, view=self)
        return paginator.get_paginated_response(CompressionOutput(page, many=True).data)

    @extend_schema(
        request=CompressionInput, responses={201: CompressionOutput}, summary="Submit a compression job"
    )
    def post(self, request):
        data = self.CompressionInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = compression_submit(user=request.user, **data.validated_data)  # ValidationError -> 400 by field
        return Response(CompressionOutput(job).data, status=status.HTTP_201_CREATED)


class CompressionDetailApi(APIView):
    required_permission = "training.view"

    @extend_schema(
        responses=CompressionDetailOutput,
        summary="One compression: status, engine result, benchmarks of source and result, ratios and quality",
    )
    def get(self, request, pk: int):
        return Response(CompressionDetailOutput(get_object_or_404(compression_jobs(), pk=pk)).data)


class CompressionCancelApi(APIView):
    required_permission = "training.submit"

    @extend_schema(
        request=None, responses={202: CompressionOutput, 409: None}, summary="Cancel a compression"
    )
    def post(self, request, pk: int):
        job = get_object_or_404(CompressionJob, pk=pk)
        try:
            job = job_cancel(model=CompressionJob, job_id=job.pk)
        except IllegalTransition as exc:
            return Response(error_body(409, "conflict", str(exc)), status=status.HTTP_409_CONFLICT)
        return Response(CompressionOutput(job).data, status=status.HTTP_202_ACCEPTED)
