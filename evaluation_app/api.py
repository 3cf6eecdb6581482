"""Evaluation API: submit a run (every problem with the target, the example set, the suites, the rules, the judge
and the generation settings in one 400), list and read runs, cancel one, page through its per-example results, and
give a result a person's good/bad label. Comparison reports are in ``api_comparisons``.

Query filters go through a small serializer too, so a bad filter value is a 400 naming the parameter instead of an
empty page. The input serializer checks only shapes and references; what a value means (a suite that needs a
generative model, a rule's regular expression, a judge URL) is checked by ``eval_run_submit``, which gathers every
problem at once, so the 400 names them all together.
"""

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.models import DatasetVersion
from evaluation_app.models import EvalResult, EvalRun, Lang, Pack, Suite, Trigger
from evaluation_app.services.labels import eval_result_label
from evaluation_app.services.submit import eval_run_submit
from llmops.api_errors import error_body
from llmops.jobs import IllegalTransition, JobStatus, job_cancel
from registry_app.models import ModelVersion
from training_app.models import FineTuneJob


def query(serializer_class, request) -> dict:
    """The request's query filters, validated (a bad value is a 400 naming the parameter)."""
    filters = serializer_class(data=request.query_params)
    filters.is_valid(raise_exception=True)
    return {k: v for k, v in filters.validated_data.items() if v != ""}


def paginated(request, view, queryset, output_class) -> Response:
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(output_class(page, many=True).data)


class EvalRunOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model_version.__str__", read_only=True, help_text="name vN")
    source = serializers.CharField(source="source_label", read_only=True, help_text="what the run scores")
    leaked = serializers.IntegerField(read_only=True, help_text="examples found in the model's training data")
    created_by = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = EvalRun
        fields = ["id", "name", "status", "progress", "progress_message", "error", "model_version", "model",
                  "dataset_version", "split", "product", "source", "suites", "has_template", "trigger",
                  "source_job", "example_count", "leaked", "created_by", "created_at", "started_at",
                  "finished_at"]  # fmt: skip


class EvalRunDetailOutput(EvalRunOutput):
    class Meta(EvalRunOutput.Meta):
        fields = [*EvalRunOutput.Meta.fields, "system_prompt", "few_shot", "rules", "judge", "generation",
                  "general_pack", "pass_threshold", "limit", "lang", "cancel_requested", "metrics", "leakage"]  # fmt: skip


class EvalResultOutput(serializers.ModelSerializer):
    human_labelled_by = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = EvalResult
        fields = ["id", "run", "pack", "position", "key", "example", "case", "category", "tags", "prompt",
                  "reference", "prediction", "noisy_prediction", "score", "noisy_score", "correct", "scores",
                  "rules", "judge", "judge_error", "probs", "saliency", "latency_ms", "prompt_tokens",
                  "new_tokens", "leaked", "human_label", "human_labelled_by"]  # fmt: skip


class FewShotTurn(serializers.Serializer):
    user = serializers.CharField(trim_whitespace=False)
    assistant = serializers.CharField(trim_whitespace=False)


def runs() -> QuerySet[EvalRun]:
    return EvalRun.objects.select_related("model_version__model", "dataset_version__dataset", "created_by")


class EvalRunListCreateApi(APIView):
    required_permission = {"GET": "evaluation.view", "POST": "evaluation.submit"}

    class FilterSerializer(serializers.Serializer):
        model_version = serializers.IntegerField(required=False, min_value=1)
        dataset_version = serializers.IntegerField(required=False, min_value=1)
        status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
        product = serializers.CharField(required=False, allow_blank=True, max_length=100)

    class InputSerializer(serializers.Serializer):
        model_version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())
        dataset_version = serializers.PrimaryKeyRelatedField(
            queryset=DatasetVersion.objects.all(), required=False, allow_null=True, default=None,
            help_text="a ready dataset version; empty: the product's regression suite (its approved error cases)",
        )  # fmt: skip
        split = serializers.CharField(default="test", max_length=10)
        product = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
        suites = serializers.ListField(
            child=serializers.CharField(), default=list,
            help_text=f"any of {', '.join(Suite.values)}; task is always included",
        )  # fmt: skip
        rules = serializers.ListField(
            child=serializers.JSONField(), default=list,
            help_text='code-based rules, e.g. {"kind": "regex_must", "pattern": "..."}',
        )  # fmt: skip
        judge = serializers.DictField(
            required=False, allow_null=True, default=None,
            help_text='{"base_url", "model", "rubrics": ["correctness", ...], "api_key_env", "timeout_s"}',
        )  # fmt: skip
        generation = serializers.DictField(
            required=False, allow_null=True, default=None,
            help_text='{"max_new_tokens", "temperature", "top_p", "do_sample", "seed", "stop": [...]}',
        )  # fmt: skip
        system_prompt = serializers.CharField(
            required=False, allow_blank=True, default="", trim_whitespace=False
        )
        few_shot = FewShotTurn(many=True, required=False, default=list)
        general_pack = serializers.BooleanField(default=True)
        pass_threshold = serializers.FloatField(default=0.5)
        limit = serializers.IntegerField(required=False, allow_null=True, default=None)
        lang = serializers.ChoiceField(choices=Lang.choices, default=Lang.AUTO)
        name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
        trigger = serializers.ChoiceField(choices=Trigger.choices, default=Trigger.MANUAL)
        source_job = serializers.PrimaryKeyRelatedField(
            queryset=FineTuneJob.objects.all(), required=False, allow_null=True, default=None
        )

    @extend_schema(
        parameters=[FilterSerializer],
        responses=EvalRunOutput(many=True),
        summary="List evaluation runs, newest first",
    )
    def get(self, request):
        filters = query(self.FilterSerializer, request)
        found = runs().filter(**{f"{k}_id" if k.endswith("_version") else k: v for k, v in filters.items()})
        return paginated(request, self, found, EvalRunOutput)

    @extend_schema(
        request=InputSerializer, responses={201: EvalRunDetailOutput}, summary="Submit an evaluation"
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = eval_run_submit(user=request.user, **data.validated_data)  # a ValidationError is a 400 by field
        return Response(EvalRunDetailOutput(run).data, status=status.HTTP_201_CREATED)


class EvalRunDetailApi(APIView):
    required_permission = "evaluation.view"

    @extend_schema(
        responses=EvalRunDetailOutput,
        summary="One evaluation run: status, progress, metrics per suite, leakage, template and settings",
    )
    def get(self, request, pk: int):
        return Response(EvalRunDetailOutput(get_object_or_404(runs(), pk=pk)).data)


class EvalRunCancelApi(APIView):
    required_permission = "evaluation.submit"

    @extend_schema(
        request=None, responses={202: EvalRunDetailOutput, 409: None}, summary="Cancel an evaluation"
    )
    def post(self, request, pk: int):
        run = get_object_or_404(EvalRun, pk=pk)
        try:
            run = job_cancel(model=EvalRun, job_id=run.pk)
        except IllegalTransition as exc:
            return Response(error_body(409, "conflict", str(exc)), status=status.HTTP_409_CONFLICT)
        return Response(EvalRunDetailOutput(run).data, status=status.HTTP_202_ACCEPTED)


LEAKED_FILTERS = {
    "exact": Q(leaked="exact"),
    "near": Q(leaked="near"),
    "any": ~Q(leaked=""),
    "none": Q(leaked=""),
}
CORRECT_FILTERS = {"true": Q(correct=True), "false": Q(correct=False), "null": Q(correct__isnull=True)}
LABEL_FILTERS = {"good": Q(human_label="good"), "bad": Q(human_label="bad"), "none": Q(human_label="")}


class EvalResultListApi(APIView):
    required_permission = "evaluation.view"

    class FilterSerializer(serializers.Serializer):
        pack = serializers.ChoiceField(choices=Pack.choices, required=False)
        correct = serializers.ChoiceField(
            choices=list(CORRECT_FILTERS), required=False, help_text="null: the results not scored"
        )
        leaked = serializers.ChoiceField(choices=list(LEAKED_FILTERS), required=False)
        category = serializers.CharField(required=False, max_length=100)
        human_label = serializers.ChoiceField(choices=list(LABEL_FILTERS), required=False)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=EvalResultOutput(many=True),
        summary="A run's per-example results: prediction, reference, scores, rules, judge, cost",
    )
    def get(self, request, pk: int):
        run = get_object_or_404(EvalRun, pk=pk)
        filters = query(self.FilterSerializer, request)
        found = run.results.select_related("human_labelled_by")
        if "leaked" in filters:
            found = found.filter(LEAKED_FILTERS[filters.pop("leaked")])
        if "human_label" in filters:
            found = found.filter(LABEL_FILTERS[filters.pop("human_label")])
        if "correct" in filters:
            found = found.filter(CORRECT_FILTERS[filters.pop("correct")])
        return paginated(request, self, found.filter(**filters), EvalResultOutput)


class EvalResultLabelApi(APIView):
    required_permission = "evaluation.label"

    class InputSerializer(serializers.Serializer):
        label = serializers.CharField(allow_blank=True, help_text='"good", "bad", or "" to clear it')

    @extend_schema(
        request=InputSerializer,
        responses=EvalResultOutput,
        summary="Label one prediction good or bad (what the judge's agreement is measured on)",
    )
    def post(self, request, pk: int, result_id: int):
        result = get_object_or_404(EvalResult, pk=result_id, run_id=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = eval_result_label(user=request.user, result=result, **data.validated_data)
        return Response(EvalResultOutput(result).data)
