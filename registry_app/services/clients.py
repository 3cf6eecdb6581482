"""Client applications of the serving gateway and their tokens (the client pages call these).

A token is ``llmops_app_…``; only its sha256 is stored, so the raw token is returned once, by client_token_issue.
Revoking is immediate: the gateway looks the token up on every request.
"""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from registry_app.models import ClientApp, ClientToken, hash_client_token

PREFIX_CHARS = 18  # "llmops_app_" and 7 characters of the secret: enough to tell tokens apart on the page


@transaction.atomic
def client_app_create(
    *, user, name: str, description: str = "", rate_limit_per_minute: int = 600
) -> ClientApp:
    name = name.strip()
    problems = {}
    if not name:
        problems["name"] = ["is required"]
    elif ClientApp.objects.filter(name__iexact=name).exists():
        problems["name"] = [f"an application named {name!r} already exists"]
    if rate_limit_per_minute < 0:
        problems["rate_limit_per_minute"] = ["must be 0 (no limit) or more"]
    if problems:
        raise ValidationError(problems)
    return ClientApp.objects.create(
        name=name,
        description=description.strip(),
        rate_limit_per_minute=rate_limit_per_minute,
        created_by=user,
    )


@transaction.atomic
def client_token_issue(
    *, app: ClientApp, name: str, expires_in_days: int | None = None
) -> tuple[ClientToken, str]:
    """A new token for ``app``: (the row, the raw token to show once)."""
    name = name.strip()
    problems = {}
    if not name:
        problems["name"] = ["is required"]
    elif app.tokens.filter(name=name, revoked_at__isnull=True).exists():
        problems["name"] = [f"{app.name} already has an active token named {name!r}"]
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        problems["expires_in_days"] = ["must be from 1 to 3650 days, or empty for no expiry"]
    if problems:
        raise ValidationError(problems)
    raw = ClientToken.generate()
    expires = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    token = ClientToken.objects.create(
        app=app, name=name, prefix=raw[:PREFIX_CHARS], key_hash=hash_client_token(raw), expires_at=expires
    )
    return token, raw


@transaction.atomic
def client_token_revoke(*, token: ClientToken) -> ClientToken:
    """Revoke now (already revoked: unchanged); calls with it answer 401 from the next request on (within
    gateway.auth.TOKEN_TTL_S in gateway processes other than this one)."""
    token = ClientToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
