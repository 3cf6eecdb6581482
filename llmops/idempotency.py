"""`Idempotency-Key` for API writes: a retried call gets the first answer back and creates nothing twice.

The key is scoped to the user; the first answer is stored in the same transaction as the write it describes, so a
crash leaves neither. Reusing a key for a different request body is refused (422), as Stripe does.
"""

import hashlib
import json
from collections.abc import Callable

from django.db import IntegrityError, transaction
from rest_framework.response import Response

from llmops.api_errors import error_body
from llmops.models import IdempotencyRecord

HEADER = "Idempotency-Key"


def _request_hash(request) -> str:
    return hashlib.sha256(json.dumps(request.data, sort_keys=True, default=str).encode()).hexdigest()


def _replay(record: IdempotencyRecord, request_hash: str) -> Response:
    if record.request_hash != request_hash:
        body = error_body(
            422, "idempotency_key_reused", f"{HEADER} was already used for a different request."
        )
        return Response(body, status=422)
    return Response(record.body, status=record.status_code, headers={"Idempotent-Replayed": "true"})


def idempotent(request, endpoint: str, handler: Callable[[], Response]) -> Response:
    """Run `handler` once per (user, key); without the header, just run it."""
    key = request.headers.get(HEADER, "").strip()
    if not key:
        return handler()
    if len(key) > 255:
        return Response(error_body(400, "invalid", f"{HEADER} is longer than 255 characters."), status=400)
    request_hash = _request_hash(request)
    found = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
    if found:
        return _replay(found, request_hash)
    try:
        with transaction.atomic():
            response = handler()
            if response.status_code < 500:
                IdempotencyRecord.objects.create(
                    user=request.user, key=key, endpoint=endpoint, request_hash=request_hash,
                    status_code=response.status_code, body=response.data,
                )  # fmt: skip
            return response
    except IntegrityError:  # a concurrent retry stored its answer first; ours was rolled back
        first = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
        if first is None:
            raise
        return _replay(first, request_hash)
