"""Fine-tune API: submit (every hyperparameter problem in one 400) and read one job with its metrics summary."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.models import DatasetVersion
from llmops.api_errors import error_body
from llmops.jobs import PRIORITY_HIGHEST, PRIORITY_LOWEST, IllegalTransition, job_cancel
from registry_app.models import ModelVersion
from training_app.models import FineTuneJob
from training_app.selectors import metric_summary
from training_app.services import fine_tune_submit


class FineTuneOutput(serializers.ModelSerializer):
    result_version = serializers.PrimaryKeyRelatedField(read_only=True)
    metrics = serializers.SerializerMethodField()

    class Meta:
        model = FineTuneJob
        fields = ["id", "status", "progress", "progress_message", "error", "base", "dataset_version", "method",
                  "config", "gpus", "priority", "tokens_seen", "best_step", "result_version", "created_at",
                  "started_at", "finished_at", "metrics"]  # fmt: skip

    def get_metrics(self, job) -> dict:
        return metric_summary(job)


class FineTuneCreateApi(APIView):
    required_permission = "training.submit"

    class FineTuneInput(serializers.Serializer):
        base = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())
        dataset_version = serializers.PrimaryKeyRelatedField(queryset=DatasetVersion.objects.all())
        method = serializers.CharField(default="lora")
        hyperparameters = serializers.DictField(default=dict)
        gpus = serializers.IntegerField(default=1, min_value=1, max_value=64)
        priority = serializers.IntegerField(
            default=0, min_value=PRIORITY_LOWEST, max_value=PRIORITY_HIGHEST, help_text="higher runs sooner"
        )

    @extend_schema(request=FineTuneInput, responses={201: FineTuneOutput}, summary="Submit a fine-tune")
    def post(self, request):
        data = self.FineTuneInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = fine_tune_submit(
            user=request.user, **data.validated_data
        )  # a ValidationError becomes a 400 naming the fields
        return Response(FineTuneOutput(job).data, status=status.HTTP_201_CREATED)


class FineTuneDetailApi(APIView):
    required_permission = "training.view"

    @extend_schema(
        responses=FineTuneOutput, summary="One fine-tune: status, progress, metrics, result version"
    )
    def get(self, request, pk: int):
        return Response(FineTuneOutput(get_object_or_404(FineTuneJob, pk=pk)).data)


class FineTuneCancelApi(APIView):
    required_permission = "training.submit"

    @extend_schema(request=None, responses={202: FineTuneOutput, 409: None}, summary="Cancel a fine-tune")
    def post(self, request, pk: int):
        job = get_object_or_404(FineTuneJob, pk=pk)
        try:
            job = job_cancel(model=FineTuneJob, job_id=job.pk)
        except IllegalTransition as exc:
            return Response(error_body(409, "conflict", str(exc)), status=status.HTTP_409_CONFLICT)
        return Response(FineTuneOutput(job).data, status=status.HTTP_202_ACCEPTED)
