"""Which version answers a request: ``model`` names a deployment, a family, or pins a version.

- a Deployment name: running -> one of its variants, by weight, sticky per end user; stopped -> production only.
  A variant whose version is null follows the family's production alias.
- a family name with no deployment of that name: its production version (100%).
- ``family:vN`` (ModelVersion.openai_id): that version.
Anything else, or a family without a production version, is a 404 ``model_not_found``.

Sticky assignment: ``bucket = int(sha256(f"{deployment}:{user_key}")[:12], 16) % 10000`` falls in one variant's
slice of the cumulative weights; the user key is the request's ``user``, else the X-User-Id header, else a random
id (such a request is not sticky). Routing reads the database on every request (two or three indexed queries), so a
promotion, a rollback or a stopped experiment takes effect on the next request.
"""

import hashlib
import secrets
from dataclasses import dataclass

from registry_app.models import Alias, Deployment, DeploymentStatus, ModelVersion
from training_app.openai_api.errors import OpenAIError

BUCKETS = 10_000
PRODUCTION = "production"
PINNED = "pinned"


@dataclass(frozen=True)
class Route:
    version: ModelVersion
    deployment: Deployment | None = None
    variant: str = PRODUCTION


def model_not_found(model: str, why: str = "") -> OpenAIError:
    message = f"The model {model!r} does not exist" + (f": {why}" if why else "")
    message += ". Send a deployment name, a model family with a production version, or family:vN."
    return OpenAIError(404, message, param="model", code="model_not_found")


def bucket(deployment_name: str, user_key: str) -> int:
    digest = hashlib.sha256(f"{deployment_name}:{user_key}".encode()).hexdigest()
    return int(digest[:12], 16) % BUCKETS


def pick(weights: list[int], point: int) -> int:
    """Index of the variant whose slice of ``BUCKETS`` (proportional to its weight) holds ``point``."""
    total = sum(weights)
    if total <= 0:
        return 0
    edge = 0
    for index, weight in enumerate(weights):
        edge += weight
        if point * total < edge * BUCKETS:
            return index
    return len(weights) - 1


def user_key_of(user: str | None, header: str | None) -> tuple[str, bool]:
    """(key, sticky): the request's user, else the X-User-Id header, else a random, not sticky, id."""
    if user:
        return user, True
    if header:
        return header, True
    return secrets.token_hex(8), False


def _versions():
    return ModelVersion.objects.select_related("model", "base")


def production_of(model_id: int) -> ModelVersion | None:
    return _versions().filter(model_id=model_id, alias=Alias.PRODUCTION).first()


def _pinned(model: str) -> ModelVersion | None:
    name, sep, number = model.rpartition(":v")
    if not (sep and name and number.isdigit() and len(number) < 10):
        return None
    return _versions().filter(model__name=name, number=int(number)).first()


def resolve(model: str, user_key: str) -> Route:
    """The route for ``model`` and this end user; OpenAIError 404 when nothing serves it."""
    if not isinstance(model, str) or not model:
        raise model_not_found(str(model))
    deployment = Deployment.objects.select_related("model").filter(name=model).first()
    if deployment is not None:
        return _deployment_route(deployment, user_key)
    if ":v" in model:
        version = _pinned(model)
        if version is not None:
            return Route(version=version, variant=PINNED)
        raise model_not_found(model)
    version = _versions().filter(model__name=model, alias=Alias.PRODUCTION).first()
    if version is None:
        why = (
            "it has no production version" if ModelVersion.objects.filter(model__name=model).exists() else ""
        )
        raise model_not_found(model, why)
    return Route(version=version)


def _deployment_route(deployment: Deployment, user_key: str) -> Route:
    variants = list(deployment.variants.select_related("version__model", "version__base"))
    chosen = None
    if deployment.status == DeploymentStatus.RUNNING and variants:
        chosen = variants[pick([v.weight for v in variants], bucket(deployment.name, user_key))]
    if chosen is not None and chosen.version is not None:
        return Route(version=chosen.version, deployment=deployment, variant=chosen.label)
    production = production_of(deployment.model_id)
    if production is None:
        raise model_not_found(deployment.name, f"{deployment.model.name} has no production version")
    label = chosen.label if chosen is not None else PRODUCTION
    return Route(version=production, deployment=deployment, variant=label)
