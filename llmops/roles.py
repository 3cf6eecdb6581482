"""Who may do what: one table, consulted by views (``role_required``) and the API (``RolePermission``).

Roles are Django groups. Every guarded view declares the permission it needs; tests/llmops/test_roles.py walks the
URL configuration and checks every view against this matrix for every role, so no endpoint can be forgotten.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

PM = "PM"
DATA_SCIENTIST = "Data Scientist"
ARCHITECT = "Architect"
ADMIN = "Admin"
ROLES: tuple[str, ...] = (PM, DATA_SCIENTIST, ARCHITECT, ADMIN)
EVERYONE = frozenset(ROLES)

# permission -> roles that hold it. Later issues add rows here, never checks elsewhere.
MATRIX: dict[str, frozenset[str]] = {
    "portal.view": EVERYONE,
    "tokens.manage": EVERYONE,
    "api.docs": EVERYONE,
    "diagnostics.view": frozenset({ADMIN}),
    "diagnostics.run": frozenset({ADMIN}),
    # error notebook: everyone reads; PMs and data scientists create and edit; PMs and admins approve or reject
    "cases.view": EVERYONE,
    "cases.edit": frozenset({PM, DATA_SCIENTIST}),
    "cases.approve": frozenset({PM, ADMIN}),
    "cases.delete": frozenset({PM, ADMIN}),
    "cases.comment": EVERYONE,
    # dataset versions: everyone reads data cards; data scientists (and admins) create datasets and build versions
    "datasets.view": EVERYONE,
    "datasets.build": frozenset({DATA_SCIENTIST, ADMIN}),
    # fine-tunes: everyone watches runs; data scientists (and admins) submit them
    "training.view": EVERYONE,
    "training.submit": frozenset({DATA_SCIENTIST, ADMIN}),
    # model registry: everyone sees the models, their versions and lineage
    "registry.view": EVERYONE,
    # data scientists (and admins) register base models from a folder or a hub id
    "registry.register": frozenset({DATA_SCIENTIST, ADMIN}),
    # evaluation: everyone reads runs and comparison reports; data scientists (and admins) run and compare;
    # PMs, data scientists and admins give the human good/bad label that the judge's agreement is measured on
    "evaluation.view": EVERYONE,
    "evaluation.submit": frozenset({DATA_SCIENTIST, ADMIN}),
    "evaluation.label": frozenset({PM, DATA_SCIENTIST, ADMIN}),
    # promotion: data scientists (and architects, admins) request it; only architects decide, edit gate policies
    # and roll back (never on their own request: checked by the service)
    "registry.promote": frozenset({DATA_SCIENTIST, ARCHITECT, ADMIN}),
    "registry.approve": frozenset({ARCHITECT}),
    "registry.gate": frozenset({ARCHITECT}),
    "registry.rollback": frozenset({ARCHITECT}),
    # exports of a version for other serving stacks (merged HF folder, ONNX, Triton repository)
    "registry.export": frozenset({DATA_SCIENTIST, ARCHITECT, ADMIN}),
    # serving: everyone watches deployments and their A/B dashboards; architects (and admins) split traffic and
    # stop experiments; admins and architects manage the client applications that call the gateway and their tokens
    "serving.view": EVERYONE,
    "serving.manage": frozenset({ARCHITECT, ADMIN}),
    "serving.clients": frozenset({ARCHITECT, ADMIN}),
    # the guided demo run (the whole loop on a demo base, from the home page): admins start it and watch it
    "demo.run": frozenset({ADMIN}),
}

# What each role is for, shown on the home page.
ROLE_DESCRIPTIONS = {
    PM: "Collect, triage, correct and approve error cases; watch the curation funnel and A/B feedback.",
    DATA_SCIENTIST: "Build dataset versions; submit fine-tune, compression and evaluation jobs; compare runs.",
    ARCHITECT: "Read comparison reports, edit gate policies, approve or reject promotions, roll back.",
    ADMIN: "Users, roles, taxonomies, sensitive-word lists, API tokens, quotas, diagnostics.",
}

# Navigation: (label, url name, permission). The context processor shows the entries the user may open.
NAVIGATION: tuple[tuple[str, str, str], ...] = (
    ("Home", "home", "portal.view"),
    ("Error notebook", "cases:list", "cases.view"),
    ("Curation", "cases:dashboard", "cases.view"),
    ("Datasets", "datasets:list", "datasets.view"),
    ("Fine-tuning", "training:list", "training.view"),
    ("Compression", "training:compressions", "training.view"),
    ("Models", "registry:list", "registry.view"),
    ("Promotions", "registry:promotions", "registry.view"),
    ("Serving", "registry:deployments", "serving.view"),
    ("Evaluation", "evaluation:list", "evaluation.view"),
    ("Client apps", "registry:clients", "serving.clients"),
    ("Diagnostics", "diagnostics:list", "diagnostics.view"),
    ("API tokens", "tokens", "tokens.manage"),
    ("API docs", "api-docs", "api.docs"),
)


def user_roles(user) -> frozenset[str]:
    if not user or not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, "_llmops_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached = cached | {ADMIN}
        user._llmops_roles = cached
    return cached


def has_perm(user, permission: str) -> bool:
    if permission not in MATRIX:
        raise KeyError(f"unknown permission {permission!r}: add it to llmops.roles.MATRIX")
    return bool(user_roles(user) & MATRIX[permission])


def permissions_of(user) -> list[str]:
    return sorted(p for p in MATRIX if has_perm(user, p))


def role_required(permission: str) -> Callable:
    """Guard a function view: anonymous users go to the login page, users without the permission get 403."""
    if permission not in MATRIX:
        raise KeyError(f"unknown permission {permission!r}")

    def decorator(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_perm(request.user, permission):
                raise PermissionDenied(f"your roles do not include the permission {permission}")
            return view(request, *args, **kwargs)

        guarded.required_permission = permission
        return guarded

    return decorator


def public(view):
    """Mark a view as open to everyone (login page, health check); the role test skips it on purpose."""
    view.public = True
    return view


class RolePermission(BasePermission):
    """DRF permission: the view's ``required_permission`` (a name, or a dict of HTTP method -> name)."""

    message = "Your roles do not allow this operation."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        needed = required_permission_for(view, request.method)
        return needed is not None and has_perm(request.user, needed)


def required_permission_for(view, method: str) -> str | None:
    needed = getattr(view, "required_permission", None)
    if isinstance(needed, dict):
        return needed.get(method.upper()) or (
            needed.get("GET") if method.upper() in {"HEAD", "OPTIONS"} else None
        )
    return needed
