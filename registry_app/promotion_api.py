"""Promotion API: request a promotion, read one with its gate results, approve or reject it, roll production back.

The rules live in registry_app.services.promotion, so the API refuses exactly what the pages refuse: a PM or a data
scientist approving gets 403 (the view's permission), an architect approving their own request gets 403 with the
reason (the service), a failed gate item without an override reason is a 400 naming ``override_<item>``.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from registry_app import selectors
from registry_app.models import PROMOTION_TARGETS, ModelVersion, PromotionRequest, RegisteredModel
from registry_app.services import promotion as services
from registry_app.services.promotion import MAX_COMMENT


class GateRowOutput(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    threshold = serializers.JSONField(help_text="the policy's threshold (a number, true, or a metric name)")
    shown = serializers.CharField(help_text="the threshold as the pages show it")
    value = serializers.JSONField(
        allow_null=True, help_text="the measured value; null when the fact is missing"
    )
    passed = serializers.BooleanField()
    detail = serializers.CharField(allow_blank=True)


class PromotionOutput(serializers.ModelSerializer):
    class VersionOutput(serializers.ModelSerializer):
        model = serializers.CharField(source="model.name")

        class Meta:
            model = ModelVersion
            fields = ["id", "model", "number", "source", "format", "alias", "size_bytes"]

    version = VersionOutput()
    gate = GateRowOutput(many=True, help_text="the gate at request time, or as decided")
    requested_by = serializers.CharField(source="requested_by.get_username")
    decided_by = serializers.CharField(source="decided_by.get_username", allow_null=True, default=None)
    report = serializers.PrimaryKeyRelatedField(
        read_only=True, help_text="the comparison report the gate read"
    )

    class Meta:
        model = PromotionRequest
        fields = ["id", "version", "target", "status", "comment", "report", "gate", "requested_by",
                  "requested_at", "decided_by", "decided_at", "decision_comment", "overrides"]  # fmt: skip


class PromotionCreateApi(APIView):
    required_permission = "registry.promote"

    class PromotionInput(serializers.Serializer):
        version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.select_related("model"))
        target = serializers.ChoiceField(choices=[t.value for t in PROMOTION_TARGETS])
        comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_COMMENT)

    @extend_schema(request=PromotionInput, responses={201: PromotionOutput},
                   summary="Request the promotion of a version to staging or production")  # fmt: skip
    def post(self, request):
        data = self.PromotionInput(data=request.data)
        data.is_valid(raise_exception=True)
        promotion = services.promotion_request_create(user=request.user, **data.validated_data)
        return Response(PromotionOutput(promotion).data, status=status.HTTP_201_CREATED)


class PromotionDetailApi(APIView):
    required_permission = "registry.view"

    @extend_schema(responses=PromotionOutput, summary="One promotion request with its gate results")
    def get(self, request, pk: int):
        return Response(PromotionOutput(get_object_or_404(selectors.promotions(), pk=pk)).data)


class PromotionApproveApi(APIView):
    required_permission = "registry.approve"

    class ApproveInput(serializers.Serializer):
        comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_COMMENT)
        overrides = serializers.DictField(
            child=serializers.CharField(allow_blank=True, max_length=2000), required=False, default=dict,
            help_text="failed gate item key -> the written reason for approving past it",
        )  # fmt: skip

    @extend_schema(request=ApproveInput, responses={200: PromotionOutput},
                   summary="Approve a promotion (architects; never one's own request)")  # fmt: skip
    def post(self, request, pk: int):
        promotion = get_object_or_404(selectors.promotions(), pk=pk)
        data = self.ApproveInput(data=request.data)
        data.is_valid(raise_exception=True)
        promotion = services.promotion_approve(user=request.user, request=promotion, **data.validated_data)
        return Response(PromotionOutput(get_object_or_404(selectors.promotions(), pk=promotion.pk)).data)


class PromotionRejectApi(APIView):
    required_permission = "registry.approve"

    class RejectInput(serializers.Serializer):
        comment = serializers.CharField(max_length=MAX_COMMENT, help_text="why (required)")

    @extend_schema(request=RejectInput, responses={200: PromotionOutput},
                   summary="Reject a promotion with a comment (architects; never one's own request)")  # fmt: skip
    def post(self, request, pk: int):
        promotion = get_object_or_404(selectors.promotions(), pk=pk)
        data = self.RejectInput(data=request.data)
        data.is_valid(raise_exception=True)
        promotion = services.promotion_reject(user=request.user, request=promotion, **data.validated_data)
        return Response(PromotionOutput(get_object_or_404(selectors.promotions(), pk=promotion.pk)).data)


class RollbackApi(APIView):
    required_permission = "registry.rollback"

    class RollbackInput(serializers.Serializer):
        comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    class RollbackOutput(serializers.Serializer):
        model = serializers.CharField()
        production = PromotionOutput.VersionOutput(help_text="the version now in production")

    @extend_schema(request=RollbackInput, responses={200: RollbackOutput},
                   summary="Roll a family's production back to its previous production version")  # fmt: skip
    def post(self, request, name: str):
        model = get_object_or_404(RegisteredModel, name=name)
        data = self.RollbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.production_rollback(user=request.user, model=model, **data.validated_data)
        return Response(self.RollbackOutput({"model": model.name, "production": version}).data)
