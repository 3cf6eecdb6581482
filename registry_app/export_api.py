"""Exports API: start an export of a version (a cpu job) and follow it."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from registry_app.models import ExportJob, ExportKind, ModelVersion


class ExportOutput(serializers.ModelSerializer):
    version = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = ExportJob
        fields = ["id", "status", "progress", "progress_message", "error", "version", "kind", "result_uri",
                  "result_sha256", "result_bytes", "created_at", "started_at", "finished_at"]  # fmt: skip


class ExportCreateApi(APIView):
    required_permission = "registry.export"

    class ExportInput(serializers.Serializer):
        kind = serializers.ChoiceField(choices=ExportKind.choices)

    @extend_schema(request=ExportInput, responses={202: ExportOutput},
                   summary="Export a version: merged Hugging Face folder, ONNX (classifiers) or Triton repository")  # fmt: skip
    def post(self, request, pk: int):
        from registry_app.services.exports import export_submit

        version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
        data = self.ExportInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = export_submit(user=request.user, version=version, kind=data.validated_data["kind"])
        return Response(ExportOutput(job).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    required_permission = "registry.view"

    @extend_schema(responses=ExportOutput, summary="One export: status, result folder, sha256 and size")
    def get(self, request, pk: int):
        return Response(ExportOutput(get_object_or_404(ExportJob, pk=pk)).data)
