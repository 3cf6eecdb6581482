"""Dataset API: datasets, their source files (multipart upload), versions (POST a recipe → 202 and a build job),
a version's card, and its rows (keyset pages as JSON, or every row streamed as JSONL)."""

import json

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets_app.models import Dataset, DatasetBuild, DatasetTask, DatasetVersion, SourceFile, VersionStatus
from datasets_app.pipeline.types import SPLITS
from datasets_app.selectors_datasets import ROWS_MAX, dataset_list, example_rows, row_dict, row_page
from datasets_app.services.datasets import dataset_create, source_file_add, version_create
from datasets_app.services.leakage import leakage_against_model
from datasets_app.views.version_downloads import file_stem
from datasets_app.views.versions import redacted
from llmops.api_errors import error_body, validation_error_body
from registry_app.models import ModelVersion


def _invalid(exc: DjangoValidationError) -> Response:
    return Response(validation_error_body(exc), status=400)


class DatasetOutput(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "product",
            "task_type",
            "description",
            "is_general",
            "created_by",
            "created_at",
        ]


class SourceFileOutput(serializers.ModelSerializer):
    uploaded_by = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = SourceFile
        fields = ["id", "name", "file_format", "sha256", "size_bytes", "uploaded_by", "uploaded_at"]


class VersionSummary(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(read_only=True, slug_field="username")

    class Meta:
        model = DatasetVersion
        fields = ["id", "dataset", "number", "status", "parent", "counts", "content_sha256", "created_by",
                  "created_at", "built_at"]  # fmt: skip


class VersionOutput(VersionSummary):
    recipe = serializers.SerializerMethodField()
    exports = serializers.SerializerMethodField()
    build = serializers.SerializerMethodField()

    class Meta(VersionSummary.Meta):
        fields = [
            *VersionSummary.Meta.fields,
            "error",
            "steps",
            "leakage",
            "card",
            "exports",
            "recipe",
            "build",
        ]

    def get_recipe(self, version) -> dict:
        return redacted(version.recipe)

    def get_exports(self, version) -> dict:
        """Per format: sha256, bytes, rows and each file's sha256 and bytes (never a server path)."""
        return {
            fmt: {k: v for k, v in info.items() if k != "path"}
            for fmt, info in (version.exports or {}).items()
        }

    def get_build(self, version) -> dict | None:
        job = DatasetBuild.objects.filter(version=version).first()
        if job is None:
            return None
        return {"id": job.pk, "status": job.status, "progress": job.progress, "progress_message": job.progress_message,
                "error": job.error, "log": job.log}  # fmt: skip


class DatasetDetailOutput(DatasetOutput):
    files = SourceFileOutput(many=True, read_only=True)
    versions = serializers.SerializerMethodField()

    class Meta(DatasetOutput.Meta):
        fields = [*DatasetOutput.Meta.fields, "files", "versions"]

    def get_versions(self, dataset) -> list:
        versions = dataset.versions.select_related("created_by").order_by("-number")
        return VersionSummary(versions, many=True).data


class DatasetListCreateApi(APIView):
    required_permission = {"GET": "datasets.view", "POST": "datasets.build"}

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DatasetCreateInput"

        name = serializers.CharField(max_length=100)
        task_type = serializers.ChoiceField(choices=DatasetTask.choices)
        product = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        description = serializers.CharField(required=False, allow_blank=True, default="")
        is_general = serializers.BooleanField(required=False, default=False)

    @extend_schema(responses=DatasetOutput(many=True), summary="Every dataset with its latest version")
    def get(self, request):
        rows = []
        for dataset in dataset_list():
            row = DatasetOutput(dataset).data
            row["latest_version"] = VersionSummary(dataset.latest).data if dataset.latest else None
            row["versions"], row["files"] = dataset.n_versions, dataset.n_files
            rows.append(row)
        return Response({"results": rows})

    @extend_schema(request=InputSerializer, responses={201: DatasetOutput}, summary="Create a dataset")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            dataset = dataset_create(user=request.user, **data.validated_data)
        except DjangoValidationError as exc:
            return _invalid(exc)
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    required_permission = "datasets.view"

    @extend_schema(responses=DatasetDetailOutput, summary="A dataset with its files and versions")
    def get(self, request, pk: int):
        return Response(DatasetDetailOutput(get_object_or_404(Dataset, pk=pk)).data)


class DatasetFileApi(APIView):
    required_permission = "datasets.build"
    parser_classes = [MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DatasetFileInput"

        file = serializers.FileField()

    @extend_schema(request=InputSerializer, responses={201: SourceFileOutput},
                   summary="Upload a JSONL, CSV, Parquet file or a zipped save_to_disk folder")  # fmt: skip
    def post(self, request, pk: int):
        dataset = get_object_or_404(Dataset, pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            source = source_file_add(user=request.user, dataset=dataset, upload=data.validated_data["file"])
        except DjangoValidationError as exc:
            return _invalid(exc)
        return Response(SourceFileOutput(source).data, status=status.HTTP_201_CREATED)


class DatasetVersionListCreateApi(APIView):
    required_permission = {"GET": "datasets.view", "POST": "datasets.build"}
    parser_classes = [JSONParser]

    @extend_schema(responses=VersionSummary(many=True), summary="A dataset's versions, newest first")
    def get(self, request, pk: int):
        dataset = get_object_or_404(Dataset, pk=pk)
        versions = dataset.versions.select_related("created_by").order_by("-number")
        return Response({"results": VersionSummary(versions, many=True).data})

    @extend_schema(request=dict, responses={202: VersionOutput},
                   summary="Build a new version: the body is the recipe (sources and steps)")  # fmt: skip
    def post(self, request, pk: int):
        dataset = get_object_or_404(Dataset, pk=pk)
        recipe = request.data
        if not isinstance(recipe, dict):
            return Response(error_body(400, "invalid", "The body must be a recipe object."), status=400)
        try:
            version = version_create(user=request.user, dataset=dataset, recipe=recipe)
        except DjangoValidationError as exc:
            return _invalid(exc)
        return Response(VersionOutput(version).data, status=status.HTTP_202_ACCEPTED)


class DatasetVersionDetailApi(APIView):
    required_permission = "datasets.view"

    @extend_schema(
        responses=VersionOutput, summary="A version: status, counts, steps, leakage, card, exports"
    )
    def get(self, request, pk: int):
        version = get_object_or_404(DatasetVersion.objects.select_related("created_by"), pk=pk)
        return Response(VersionOutput(version).data)


def _split(request) -> str | None:
    split = request.query_params.get("split") or None
    if split is not None and split not in SPLITS:
        raise serializers.ValidationError({"split": [f"choose one of {', '.join(SPLITS)}"]})
    return split


class RowOutput(serializers.Serializer):
    position = serializers.IntegerField()
    split = serializers.CharField()
    fields = serializers.DictField()
    tokens = serializers.IntegerField()
    origin = serializers.CharField()
    ref = serializers.DictField()
    category = serializers.CharField()
    augmented = serializers.CharField()
    key = serializers.CharField()


class RowsOutput(serializers.Serializer):
    results = RowOutput(many=True)
    next_after = serializers.IntegerField(allow_null=True)


class DatasetVersionRowsApi(APIView):
    required_permission = "datasets.view"

    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "DatasetRowsQuery"

        split = serializers.ChoiceField(choices=SPLITS, required=False)
        after = serializers.IntegerField(required=False, min_value=-1)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=ROWS_MAX, default=100)

    @extend_schema(parameters=[QuerySerializer], responses={200: RowsOutput},
                   summary="Rows in order, a page at a time (pass next_after back)")  # fmt: skip
    def get(self, request, pk: int):
        version = get_object_or_404(DatasetVersion, pk=pk)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        page = row_page(version, split=params.get("split"), after=params.get("after"), limit=params["limit"])
        return Response({"results": [row_dict(e) for e in page.rows], "next_after": page.next_after})


class DatasetVersionRowsJsonlApi(APIView):
    required_permission = "datasets.view"

    @extend_schema(parameters=[OpenApiParameter("split", str, enum=list(SPLITS))],
                   responses={(200, "application/x-ndjson"): str}, summary="Every row as JSONL, streamed")  # fmt: skip
    def get(self, request, pk: int):
        version = get_object_or_404(DatasetVersion.objects.select_related("dataset"), pk=pk)
        split = _split(request)
        rows = example_rows(version, split=split).order_by("position").iterator(chunk_size=2000)
        lines = (json.dumps(row_dict(e), ensure_ascii=False) + "\n" for e in rows)
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
        name = f"{file_stem(version)}-{split or 'all'}-rows.jsonl"
        response["Content-Disposition"] = content_disposition_header(True, name)
        return response


class LeakageOutput(serializers.Serializer):
    exact = serializers.IntegerField(help_text="test rows found exactly in the model's training rows")
    near = serializers.IntegerField(help_text="further test rows found nearly (MinHash Jaccard ≥ threshold)")
    threshold = serializers.FloatField()
    checked_test = serializers.IntegerField()
    checked_train = serializers.IntegerField()
    training_versions = serializers.ListField(child=serializers.DictField())
    examples = serializers.ListField(child=serializers.DictField())


class DatasetVersionLeakageApi(APIView):
    required_permission = "datasets.view"

    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "DatasetLeakageQuery"

        model_version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.all())

    @extend_schema(parameters=[QuerySerializer], responses={200: LeakageOutput},
                   summary="The test split's overlap with the training data of a model version")  # fmt: skip
    def get(self, request, pk: int):
        version = get_object_or_404(DatasetVersion, pk=pk, status=VersionStatus.READY)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            leakage_against_model(version=version, model_version=query.validated_data["model_version"])
        )
