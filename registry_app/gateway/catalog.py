"""/v1/models and /v1/models/{id}: what a client may send as ``model`` (moved here from the fine-tuning API).

Listed: every deployment and every family with a production version (id = the name, owned_by "portal"), then every
version (id = ``family:vN``, owned_by its creator). Open to client applications and to portal users' API tokens
with registry.view.
"""

from drf_spectacular.utils import extend_schema
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from llmops.auth import ApiTokenAuthentication
from registry_app.gateway.auth import ClientAppOrRole, ClientTokenAuthentication
from registry_app.gateway.errors import gateway_exception_handler
from registry_app.gateway.routing import model_not_found
from registry_app.models import Alias, Deployment, ModelVersion
from training_app.openai_api.objects import model_object, unix


def _named(name: str, created) -> dict:
    return {"id": name, "object": "model", "created": unix(created), "owned_by": "portal"}


def _versions():
    return ModelVersion.objects.select_related("model", "created_by")


def served_names() -> list[dict]:
    """Deployments, then families with a production version and no deployment of the same name."""
    deployments = [_named(d.name, d.created_at) for d in Deployment.objects.order_by("name")]
    taken = {d["id"] for d in deployments}
    families = [
        _named(v.model.name, v.model.created_at)
        for v in _versions().filter(alias=Alias.PRODUCTION).order_by("model__name")
        if v.model.name not in taken
    ]
    return deployments + families


@extend_schema(exclude=True)
class CatalogApi(APIView):
    authentication_classes = [ClientTokenAuthentication, ApiTokenAuthentication]
    permission_classes = [ClientAppOrRole]
    parser_classes = [JSONParser]
    required_permission = "registry.view"

    def get_exception_handler(self):
        return gateway_exception_handler


class ModelsApi(CatalogApi):
    def get(self, request):
        versions = [model_object(v) for v in _versions().order_by("model__name", "number")]
        return Response({"object": "list", "data": served_names() + versions})


class ModelApi(CatalogApi):
    def get(self, request, model: str):
        for entry in served_names():
            if entry["id"] == model:
                return Response(entry)
        name, sep, number = model.rpartition(":v")
        if sep and name and number.isdigit() and len(number) < 10:
            found = _versions().filter(model__name=name, number=int(number)).first()
            if found is not None and found.openai_id == model:
                return Response(model_object(found))
        raise model_not_found(model)
