"""API of the portal core: who am I, and diagnostic jobs."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from llmops import services
from llmops.api_errors import error_body
from llmops.jobs import IllegalTransition
from llmops.models import DiagnosticJob
from llmops.roles import permissions_of, user_roles


class MeApi(APIView):
    required_permission = "portal.view"

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())
        permissions = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses=OutputSerializer, summary="The authenticated user, their roles and permissions")
    def get(self, request):
        user = request.user
        data = {
            "username": user.get_username(),
            "roles": sorted(user_roles(user)),
            "permissions": permissions_of(user),
        }
        return Response(self.OutputSerializer(data).data)


class DiagnosticJobOutput(serializers.ModelSerializer):
    class Meta:
        model = DiagnosticJob
        fields = [
            "id",
            "status",
            "seconds",
            "queue",
            "fail_at_end",
            "progress",
            "progress_message",
            "error",
            "worker_hostname",
            "attempts",
            "cancel_requested",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        ]


class DiagnosticJobListCreateApi(APIView):
    required_permission = {"GET": "diagnostics.view", "POST": "diagnostics.run"}

    class InputSerializer(serializers.Serializer):
        seconds = serializers.FloatField(min_value=0, max_value=3600)
        queue = serializers.ChoiceField(choices=DiagnosticJob.Queue.choices, default="cpu")
        fail_at_end = serializers.BooleanField(default=False)

    @extend_schema(responses=DiagnosticJobOutput(many=True), summary="List diagnostic jobs, newest first")
    def get(self, request):
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(DiagnosticJob.objects.all(), request, view=self)
        return paginator.get_paginated_response(DiagnosticJobOutput(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: DiagnosticJobOutput},
        summary="Queue a diagnostic job that sleeps for `seconds`",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.diagnostic_job_create(user=request.user, **data.validated_data)
        return Response(DiagnosticJobOutput(job).data, status=status.HTTP_201_CREATED)


class DiagnosticJobDetailApi(APIView):
    required_permission = "diagnostics.view"

    @extend_schema(responses=DiagnosticJobOutput, summary="One diagnostic job")
    def get(self, request, pk: int):
        return Response(DiagnosticJobOutput(get_object_or_404(DiagnosticJob, pk=pk)).data)


class DiagnosticJobCancelApi(APIView):
    required_permission = "diagnostics.run"

    @extend_schema(request=None, responses={202: DiagnosticJobOutput, 409: None}, summary="Cancel a job")
    def post(self, request, pk: int):
        job = get_object_or_404(DiagnosticJob, pk=pk)
        try:
            job = services.diagnostic_job_cancel(job_id=job.pk)
        except IllegalTransition as exc:
            return Response(error_body(409, "conflict", str(exc)), status=status.HTTP_409_CONFLICT)
        return Response(DiagnosticJobOutput(job).data, status=status.HTTP_202_ACCEPTED)
