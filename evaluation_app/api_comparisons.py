"""Comparison API: compare a candidate run with a baseline run (a 400 with the reason when they cannot be compared:
the same run, different example sets, a run that failed), list and read reports with their summary and trust flags,
and page through the per-example items with both predictions side by side.

A report is ``waiting`` until both runs succeed, then ``ready`` (or ``refused`` / ``failed`` with its ``reason``);
``untrustworthy`` says test examples were seen in training, ``forgetting_flagged`` that the general-capability pack
dropped beyond the report's threshold.
"""

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluation_app.api import paginated, query
from evaluation_app.models import (
    CaseOutcome,
    ComparisonItem,
    ComparisonReport,
    EvalResult,
    EvalRun,
    Outcome,
    Pack,
    ReportStatus,
    Trigger,
)
from evaluation_app.services.compare import comparison_create
from training_app.models import FineTuneJob


class ComparisonOutput(serializers.ModelSerializer):
    # a plain string: an enum here would collide with the jobs' status enum in the schema (both named "status")
    status = serializers.CharField(read_only=True, help_text="waiting, ready, refused or failed")
    baseline_model = serializers.CharField(source="baseline.model_version.__str__", read_only=True)
    candidate_model = serializers.CharField(source="candidate.model_version.__str__", read_only=True)
    untrustworthy = serializers.BooleanField(read_only=True, help_text="test examples were seen in training")
    forgetting_flagged = serializers.BooleanField(
        read_only=True, help_text="the general-capability score dropped beyond the threshold"
    )
    created_by = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = ComparisonReport
        fields = ["id", "name", "status", "reason", "baseline", "baseline_model", "candidate", "candidate_model",
                  "forgetting_threshold", "untrustworthy", "forgetting_flagged", "trigger", "source_job",
                  "created_by", "created_at", "computed_at"]  # fmt: skip


class ComparisonDetailOutput(ComparisonOutput):
    class Meta(ComparisonOutput.Meta):
        fields = [*ComparisonOutput.Meta.fields, "summary"]


class ComparisonSideOutput(serializers.ModelSerializer):
    class Meta:
        model = EvalResult
        fields = ["id", "prediction", "score", "correct", "scores", "rules", "judge", "latency_ms", "new_tokens",
                  "leaked", "human_label"]  # fmt: skip


class ComparisonItemOutput(serializers.ModelSerializer):
    case = serializers.IntegerField(source="baseline.case_id", read_only=True, allow_null=True)
    prompt = serializers.JSONField(source="baseline.prompt", read_only=True)
    reference = serializers.CharField(source="baseline.reference", read_only=True)
    baseline = ComparisonSideOutput(read_only=True)
    candidate = ComparisonSideOutput(read_only=True)

    class Meta:
        model = ComparisonItem
        fields = ["id", "pack", "key", "category", "outcome", "case_outcome", "delta", "case", "prompt",
                  "reference", "baseline", "candidate"]  # fmt: skip


def reports():
    return ComparisonReport.objects.select_related(
        "baseline__model_version__model", "candidate__model_version__model", "created_by"
    )


class ComparisonListCreateApi(APIView):
    required_permission = {"GET": "evaluation.view", "POST": "evaluation.submit"}

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=ReportStatus.choices, required=False)
        run = serializers.IntegerField(
            required=False, min_value=1, help_text="reports with this run on a side"
        )

    class InputSerializer(serializers.Serializer):
        baseline = serializers.PrimaryKeyRelatedField(queryset=EvalRun.objects.all())
        candidate = serializers.PrimaryKeyRelatedField(queryset=EvalRun.objects.all())
        name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
        forgetting_threshold = serializers.FloatField(
            required=False, allow_null=True, default=None,
            help_text="a general-pack score drop beyond this (0..1) is flagged; empty: the portal's default",
        )  # fmt: skip
        trigger = serializers.ChoiceField(choices=Trigger.choices, default=Trigger.MANUAL)
        source_job = serializers.PrimaryKeyRelatedField(
            queryset=FineTuneJob.objects.all(), required=False, allow_null=True, default=None
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses=ComparisonOutput(many=True),
        summary="List comparison reports, newest first",
    )
    def get(self, request):
        filters = query(self.FilterSerializer, request)
        found = reports()
        if "run" in filters:
            run = filters.pop("run")
            found = found.filter(Q(baseline_id=run) | Q(candidate_id=run))
        return paginated(request, self, found.filter(**filters), ComparisonOutput)

    @extend_schema(
        request=InputSerializer,
        responses={201: ComparisonDetailOutput},
        summary="Compare a candidate run with a baseline run on the same examples",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = comparison_create(
            user=request.user, **data.validated_data
        )  # a ValidationError: 400 + reason
        return Response(ComparisonDetailOutput(report).data, status=status.HTTP_201_CREATED)


class ComparisonDetailApi(APIView):
    required_permission = "evaluation.view"

    @extend_schema(
        responses=ComparisonDetailOutput,
        summary="One comparison report: status, reason, summary (metrics with confidence intervals, forgetting, "
        "leakage), trust flags",
    )
    def get(self, request, pk: int):
        return Response(ComparisonDetailOutput(get_object_or_404(reports(), pk=pk)).data)


class ComparisonItemListApi(APIView):
    required_permission = "evaluation.view"

    class FilterSerializer(serializers.Serializer):
        pack = serializers.ChoiceField(choices=Pack.choices, required=False)
        outcome = serializers.ChoiceField(choices=Outcome.choices, required=False)
        case_outcome = serializers.ChoiceField(choices=CaseOutcome.choices, required=False)
        category = serializers.CharField(required=False, max_length=100)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=ComparisonItemOutput(many=True),
        summary="A report's examples: both predictions, win/loss/tie and fixed/newly broken per error case",
    )
    def get(self, request, pk: int):
        report = get_object_or_404(ComparisonReport, pk=pk)
        found = report.items.select_related("baseline", "candidate").filter(
            **query(self.FilterSerializer, request)
        )
        return paginated(request, self, found, ComparisonItemOutput)
