"""Client applications authenticate with ``Authorization: Bearer llmops_app_…`` (ClientToken; only its sha256 is
stored). A missing, unknown, revoked or expired token, or one of an inactive application, is a 401 in OpenAI's error
shape. The principal is a ClientUser that holds no role, so no portal permission ever passes for it.

The /v1/models views accept either kind of token: a client token, or a portal user's API token with registry.view.

The token row (with its app) is kept TOKEN_TTL_S = 5 s per process, keyed by the token's sha256, so the hot path
skips the lookup; every check (revoked, expired, app inactive) still runs on each request against what is kept.
A save or delete of a token or an app in this process clears the cache at once (and again on commit); a token
revoked or an app deactivated in another process (the portal) is refused by the gateway's processes within
TOKEN_TTL_S. Unknown tokens are never cached (a guessing client cannot fill it).
"""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from llmops.auth import bearer
from llmops.roles import RolePermission
from registry_app.gateway.ttlcache import TtlCache
from registry_app.models import CLIENT_TOKEN_PREFIX, ClientApp, ClientToken, hash_client_token

LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_TTL_S = 5.0  # how long a process reuses a token row (revocations elsewhere show after it)
MAX_TOKENS = 10_000

_tokens = TtlCache("tokens", lambda: TOKEN_TTL_S, max_items=MAX_TOKENS)
_tokens.follow(ClientToken, ClientApp)


def token_of(raw: str) -> ClientToken | None:
    """The token row for a raw client token (with its app), from the cache when fresh; None when unknown."""
    key = hash_client_token(raw)
    return _tokens.get(key, lambda: ClientToken.objects.select_related("app").filter(key_hash=key).first())


class ClientUser:
    """The request's user when a client application calls: authenticated, but with no portal role."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = is_superuser = False
    pk = id = None
    _llmops_roles = frozenset()  # llmops.roles.user_roles reads this instead of the groups table

    def __init__(self, app: ClientApp):
        self.app = app

    def get_username(self) -> str:
        return f"app:{self.app.name}"

    def __str__(self) -> str:
        return self.get_username()


class ClientTokenAuthentication(BaseAuthentication):
    """Handles ``llmops_app_…`` tokens only; any other header is left to the next authenticator."""

    only_clients = False  # True: any other bearer token is refused (401) instead of passed on

    def authenticate(self, request):
        raw = bearer(request)
        if raw is None or not raw.startswith(CLIENT_TOKEN_PREFIX):
            if raw is not None and self.only_clients:
                raise AuthenticationFailed(
                    f"this endpoint takes a client application token ({CLIENT_TOKEN_PREFIX}…)."
                )
            return None
        token = token_of(raw)
        now = timezone.now()
        if token is None:
            raise AuthenticationFailed("unknown client token.")
        if token.revoked_at is not None:
            raise AuthenticationFailed("this client token was revoked.")
        if token.expires_at is not None and token.expires_at <= now:
            raise AuthenticationFailed("this client token has expired.")
        if not token.usable(now):
            raise AuthenticationFailed(f"the client application {token.app.name} is inactive.")
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ClientToken.objects.filter(pk=token.pk).update(last_used_at=now)  # no signal: the cache stays
            token.last_used_at = now
        return ClientUser(token.app), token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="gateway"'


class ClientOnlyAuthentication(ClientTokenAuthentication):
    """The generation and feedback endpoints: client application tokens only."""

    only_clients = True


class ClientTokenScheme(OpenApiAuthenticationExtension):
    target_class = ClientTokenAuthentication
    name = "ClientToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A client application token."}


def client_app(request) -> ClientApp | None:
    return request.auth.app if isinstance(request.auth, ClientToken) else None


class IsClientApp(BasePermission):
    """Only client applications (the generation and feedback endpoints)."""

    message = (
        "This endpoint takes a client application token (llmops_app_…); portal API tokens cannot call it."
    )

    def has_permission(self, request, view) -> bool:
        return client_app(request) is not None


class ClientAppOrRole(RolePermission):
    """A client application, or a portal user holding the view's required_permission."""

    def has_permission(self, request, view) -> bool:
        return client_app(request) is not None or super().has_permission(request, view)
