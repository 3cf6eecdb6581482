"""Registry API: register a base model from a folder or a hub id (a cpu job), and follow the import."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from registry_app.base_imports import base_import_submit
from registry_app.models import BaseImport, ImportSource, ModelTask


class BaseImportOutput(serializers.ModelSerializer):
    result_version = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = BaseImport
        fields = ["id", "status", "progress", "progress_message", "error", "name", "task", "source", "location",
                  "revision", "result_version", "created_at", "started_at", "finished_at"]  # fmt: skip


class BaseImportCreateApi(APIView):
    required_permission = "registry.register"

    class BaseImportInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        task = serializers.ChoiceField(choices=ModelTask.choices, default=ModelTask.CAUSAL_LM)
        source = serializers.ChoiceField(choices=ImportSource.choices)
        location = serializers.CharField(max_length=500, help_text="an absolute folder path, or owner/name")
        revision = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)

    @extend_schema(request=BaseImportInput, responses={202: BaseImportOutput},
                   summary="Register a base model from a folder or a Hugging Face id")  # fmt: skip
    def post(self, request):
        data = self.BaseImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = base_import_submit(
            user=request.user, **data.validated_data
        )  # a ValidationError becomes a 400 naming the fields
        return Response(BaseImportOutput(job).data, status=status.HTTP_202_ACCEPTED)


class BaseImportDetailApi(APIView):
    required_permission = "registry.view"

    @extend_schema(
        responses=BaseImportOutput, summary="One base model import: status and the version it made"
    )
    def get(self, request, pk: int):
        return Response(BaseImportOutput(get_object_or_404(BaseImport, pk=pk)).data)
