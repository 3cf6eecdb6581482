"""Which version answers a request: ``model`` names a deployment, a family, or pins a version.

- a Deployment name: running -> one of its variants, by weight, sticky per end user; stopped -> production only.
  A variant whose version is null follows the family's production alias.
- a family name with no deployment of that name: its production version (100%).
- ``family:vN`` (ModelVersion.openai_id): that version.
Anything else, or a family without a production version, is a 404 ``model_not_found``.

Sticky assignment: ``bucket = int(sha256(f"{deployment}:{user_key}")[:12], 16) % 10000`` falls in one variant's
slice of the cumulative weights; the user key is the request's ``user``, else the X-User-Id header, else a random
id (such a request is not sticky).

What a name serves (its "table": the deployment, its arms and the production version) is read from the database
(two or three indexed queries) and kept ROUTE_TTL_S = 1 s per process, to keep the hot path at one token lookup,
one INCR and one INSERT. A save or delete of a version, deployment or variant in this process clears the tables
at once (and again on commit); a promotion, rollback or stopped experiment made by another process (the portal)
reaches the gateway's processes within a second. Unknown names are never cached.
"""

import hashlib
import secrets
from dataclasses import dataclass

from registry_app.gateway.ttlcache import TtlCache
from registry_app.models import Alias, Deployment, DeploymentStatus, DeploymentVariant, ModelVersion
from training_app.openai_api.errors import OpenAIError

BUCKETS = 10_000
ROUTE_TTL_S = (
    1.0  # how long a process reuses what a model name serves (other processes' changes show after it)
)
MAX_TABLES = 1000
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


@dataclass(frozen=True)
class Table:
    """What a model name serves, before the per-user choice: arms (label, weight, version or None = production)."""

    deployment: Deployment | None
    arms: tuple[tuple[str, int, ModelVersion | None], ...]
    production: ModelVersion | None
    running: bool = False


_tables = TtlCache("routes", lambda: ROUTE_TTL_S, max_items=MAX_TABLES)
_tables.follow(ModelVersion, Deployment, DeploymentVariant)


def table_of(model: str) -> Table:
    """The cached table for ``model`` (ROUTE_TTL_S), read from the database when missing or stale."""
    return _tables.get(model, lambda: _read_table(model))


def _read_table(model: str) -> Table:
    deployment = Deployment.objects.select_related("model").filter(name=model).first()
    if deployment is not None:
        variants = deployment.variants.select_related("version__model", "version__base")
        arms = tuple((v.label, v.weight, v.version) for v in variants)
        running = deployment.status == DeploymentStatus.RUNNING
        needs_production = not running or not arms or any(version is None for _, _, version in arms)
        production = production_of(deployment.model_id) if needs_production else None
        return Table(deployment, arms, production, running)
    if ":v" in model:
        version = _pinned(model)
        if version is None:
            raise model_not_found(model)
        return Table(None, ((PINNED, 1, version),), None, True)
    version = _versions().filter(model__name=model, alias=Alias.PRODUCTION).first()
    if version is None:
        exists = ModelVersion.objects.filter(model__name=model).exists()
        raise model_not_found(model, "it has no production version" if exists else "")
    return Table(None, (), version)


def resolve(model: str, user_key: str) -> Route:
    """The route for ``model`` and this end user; OpenAIError 404 when nothing serves it."""
    if not isinstance(model, str) or not model:
        raise model_not_found(str(model))
    table = table_of(model)
    label, version = PRODUCTION, None
    if table.running and table.arms:
        point = bucket(table.deployment.name, user_key) if table.deployment else 0
        label, _, version = table.arms[pick([weight for _, weight, _ in table.arms], point)]
    version = version or table.production
    if version is None:
        family = table.deployment.model.name if table.deployment else model
        raise model_not_found(model, f"{family} has no production version")
    return Route(version=version, deployment=table.deployment, variant=label)
