"""Study API: create a hyperparameter search (every problem in one 400), list studies, read one with its leaderboard,
and cancel it with its running trials."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.models import DatasetVersion
from llmops.api_errors import error_body
from llmops.jobs import IllegalTransition
from registry_app.models import ModelVersion
from training_app.models import Study
from training_app.services import study_cancel, study_create
from training_app.study_selectors import study_leaderboard


class StudyOutput(serializers.ModelSerializer):
    # a plain string: an enum here would collide with the jobs' status enum in the schema (both named "status")
    status = serializers.CharField(read_only=True, help_text="running, succeeded, failed or cancelled")

    class Meta:
        model = Study
        fields = ["id", "name", "status", "error", "base", "dataset_version", "method", "hyperparameters",
                  "search_space", "coarse_trials", "fine_trials", "parallelism", "seed", "prune_startup_trials",
                  "prune_warmup_steps", "best_trial", "created_at", "finished_at"]  # fmt: skip


class LeaderboardRowOutput(serializers.Serializer):
    rank = serializers.IntegerField()
    job = serializers.IntegerField(source="job.pk")
    number = serializers.IntegerField()
    phase = serializers.CharField()
    status = serializers.CharField(help_text="the job's status, or pruned")
    val_loss = serializers.FloatField(source="value", allow_null=True)
    params = serializers.DictField()
    tokens = serializers.IntegerField()
    result_version = serializers.IntegerField(source="result_version.pk", allow_null=True, default=None)
    is_best = serializers.BooleanField()


class StudyDetailOutput(StudyOutput):
    leaderboard = serializers.SerializerMethodField()

    class Meta(StudyOutput.Meta):
        fields = [*StudyOutput.Meta.fields, "leaderboard"]

    @extend_schema_field(LeaderboardRowOutput(many=True))
    def get_leaderboard(self, study) -> list[dict]:
        return LeaderboardRowOutput(study_leaderboard(study), many=True).data


class StudyListCreateApi(APIView):
    required_permission = {"GET": "training.view", "POST": "training.submit"}

    class StudyInput(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        base = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())
        dataset_version = serializers.PrimaryKeyRelatedField(queryset=DatasetVersion.objects.all())
        method = serializers.CharField(default="lora")
        hyperparameters = serializers.DictField(default=dict, help_text="fixed settings of every trial")
        search_space = serializers.DictField(
            help_text='{setting: {"type": "log_uniform"|"uniform"|"int", "low", "high"} or '
            '{"type": "choice", "choices": [...]}}'
        )
        coarse_trials = serializers.IntegerField()
        fine_trials = serializers.IntegerField(default=0)
        parallelism = serializers.IntegerField(default=1)
        seed = serializers.IntegerField(default=0)
        prune_startup_trials = serializers.IntegerField(default=2)
        prune_warmup_steps = serializers.IntegerField(default=0)

    @extend_schema(responses=StudyOutput(many=True), summary="List hyperparameter studies, newest first")
    def get(self, request):
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(Study.objects.all(), request, view=self)
        return paginator.get_paginated_response(StudyOutput(page, many=True).data)

    @extend_schema(
        request=StudyInput, responses={201: StudyDetailOutput}, summary="Start a hyperparameter study"
    )
    def post(self, request):
        data = self.StudyInput(data=request.data)
        data.is_valid(raise_exception=True)
        study = study_create(
            user=request.user, **data.validated_data
        )  # a ValidationError becomes a 400 naming the fields
        return Response(StudyDetailOutput(study).data, status=status.HTTP_201_CREATED)


class StudyDetailApi(APIView):
    required_permission = "training.view"

    @extend_schema(responses=StudyDetailOutput, summary="One study with its trials ranked by validation loss")
    def get(self, request, pk: int):
        return Response(StudyDetailOutput(get_object_or_404(Study, pk=pk)).data)


class StudyCancelApi(APIView):
    required_permission = "training.submit"

    @extend_schema(request=None, responses={202: StudyDetailOutput, 409: None}, summary="Cancel a study")
    def post(self, request, pk: int):
        study = get_object_or_404(Study, pk=pk)
        try:
            study = study_cancel(study_id=study.pk)
        except IllegalTransition as exc:
            return Response(error_body(409, "conflict", str(exc)), status=status.HTTP_409_CONFLICT)
        return Response(StudyDetailOutput(study).data, status=status.HTTP_202_ACCEPTED)
