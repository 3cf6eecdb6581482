"""Download the approved cases as JSONL (chat format) or CSV, filtered like the list."""

from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from datasets_app.forms import filters_from
from datasets_app.services.export import export_csv, export_jsonl
from llmops.roles import role_required

FORMATS = {
    "jsonl": (export_jsonl, "application/x-ndjson; charset=utf-8"),
    "csv": (export_csv, "text/csv; charset=utf-8"),
}


@role_required("cases.view")
@require_GET
def export_cases(request):
    fmt = request.GET.get("format", "jsonl")
    if fmt not in FORMATS:
        return HttpResponseBadRequest(f"format: choose one of {', '.join(FORMATS)}")
    produce, content_type = FORMATS[fmt]
    filters = filters_from(request.GET)
    response = StreamingHttpResponse(produce(filters), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="approved-cases.{fmt}"'
    return response
