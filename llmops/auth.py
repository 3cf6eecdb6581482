"""DRF authentication by named API token: ``Authorization: Bearer llmops_…`` (``Token …`` is accepted too)."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from llmops.models import ApiToken, hash_token

KEYWORDS = {b"bearer", b"token"}
LAST_USED_RESOLUTION = timedelta(minutes=1)


def bearer(request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` (or ``Token <token>``) header; None without such a
    header. A header that names the scheme but is malformed is refused (AuthenticationFailed, a 401)."""
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() not in KEYWORDS:
        return None
    if len(parts) != 2:
        raise AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed("The token contains characters that are not ASCII.") from None


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw = bearer(request)
        if raw is None:
            return None
        token = ApiToken.objects.select_related("user").filter(key_hash=hash_token(raw)).first()
        if token is None or token.revoked_at is not None or not token.user.is_active:
            raise AuthenticationFailed("Invalid or revoked API token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A named API token from the API tokens page.",
        }
