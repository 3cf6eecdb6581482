"""The OpenAPI schema class: HackSoft-style views nest their serializers (`CaseStatusApi.InputSerializer`), so the
component of a nested serializer is named after its view ("CaseStatusInput"), never a bare "Input" that every
view would share (drf-spectacular then merges different request bodies into one wrong component)."""

from drf_spectacular.openapi import AutoSchema


class ViewNamedAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer, direction) -> str:
        parts = type(serializer).__qualname__.split(".")
        if len(parts) > 1 and "<locals>" not in parts:
            return parts[0].removesuffix("Api") + "".join(p.removesuffix("Serializer") for p in parts[1:])
        return super().get_serializer_name(serializer, direction)
