"""One ServedResponse row per authenticated gateway request, and its Prometheus counts.

The row says who asked (the app, a 16-hex hash of the end user's key, never the key), which deployment, variant and
version answered, how (status, error, latency, tokens, cached, streamed). The conversation and the answer are kept
PII-scrubbed (datasets_app's Scrubber: e-mails, phones, cards…, and the admins' sensitive words) on the row only for
sampled requests (random() < GATEWAY_LOG_SAMPLE_RATE); for the others the scrubbed content waits in Redis for
GATEWAY_FEEDBACK_WINDOW seconds, so that feedback can still turn it into an error case. Requests refused before
a client is known (401) or for exceeding its rate limit (429) get no row, only counters: a flood must not turn into
inserts. The scrubber (and its sensitive-word list) is reloaded at most every SCRUBBER_TTL_S seconds per process.
"""

import hashlib
import json
import logging
import random
import threading
import time

import redis
from django.conf import settings

from datasets_app.services.prepare import Scrubber
from registry_app.gateway import metrics
from registry_app.gateway.ratelimit import redis_client
from registry_app.gateway.routing import Route
from registry_app.models import ClientApp, ServedResponse

log = logging.getLogger(__name__)
SCRUBBER_TTL_S = 30.0
_scrubber: tuple[float, Scrubber] | None = None
_lock = threading.Lock()


def scrubber() -> Scrubber:
    global _scrubber
    now = time.monotonic()
    with _lock:
        if _scrubber is None or now - _scrubber[0] > SCRUBBER_TTL_S:
            _scrubber = (now, Scrubber.from_database())
        return _scrubber[1]


def user_hash(user_key: str) -> str:
    return hashlib.sha256(user_key.encode()).hexdigest()[:16]


def storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL, which a user may send and a sampled model may write."""
    return text.replace("\x00", "\ufffd")


def scrubbed(conversation: list[dict], answer: str) -> tuple[list[dict], str]:
    clean, flags = scrubber(), set()
    messages = [
        {"role": m["role"], "content": storable(clean.clean(m["content"], flags))} for m in conversation
    ]
    return messages, storable(clean.clean(answer, flags))


def _stash_key(response_id: str) -> str:
    return f"gateway:conversation:{response_id}"


def record(
    *, response_id: str, app: ClientApp, endpoint: str, route: Route | None, user_key: str = "",
    status_code: int = 200, error: str = "", latency_s: float = 0.0, prompt_tokens: int = 0,
    completion_tokens: int = 0, cached: bool = False, streamed: bool = False,
    conversation: list[dict] | None = None, answer: str = "", error_type: str = "",
) -> ServedResponse:  # fmt: skip
    """Insert the request's row (one INSERT) and count it; content is scrubbed, kept or stashed as above."""
    sampled = random.random() < settings.GATEWAY_LOG_SAMPLE_RATE
    messages, text = scrubbed(conversation, answer) if conversation else ([], "")
    row = ServedResponse.objects.create(
        id=response_id, app=app, deployment=route.deployment if route else None,
        variant=route.variant if route else "", version=route.version if route else None, endpoint=endpoint,
        user_hash=user_hash(user_key) if user_key else "", status_code=status_code, error=storable(error)[:200],
        latency_ms=latency_s * 1000, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        cached=cached, streamed=streamed, sampled=sampled and bool(messages),
        messages=messages if sampled else [], answer=text if sampled else "",
    )  # fmt: skip
    if messages and not sampled:
        _stash(response_id, messages, text)
    count(route, endpoint, status_code, latency_s, prompt_tokens, completion_tokens, error_type)
    return row


def count(route: Route | None, endpoint: str, status_code: int, latency_s: float = 0.0,
          prompt_tokens: int = 0, completion_tokens: int = 0, error_type: str = "") -> None:  # fmt: skip
    deployment = route.deployment.name if route and route.deployment else ""
    version = route.version.openai_id if route else ""
    variant = route.variant if route else ""
    metrics.REQUESTS.labels(deployment, variant, version, endpoint, str(status_code)).inc()
    if status_code >= 400:
        metrics.ERRORS.labels(deployment, version, error_type or metrics.error_type(status_code)).inc()
        return
    metrics.REQUEST_SECONDS.labels(deployment, version, endpoint).observe(latency_s)
    metrics.TOKENS.labels(version, "prompt").inc(prompt_tokens)
    metrics.TOKENS.labels(version, "completion").inc(completion_tokens)


def _stash(response_id: str, messages: list[dict], answer: str) -> None:
    try:
        redis_client().set(
            _stash_key(response_id),
            json.dumps({"messages": messages, "answer": answer}),
            ex=max(1, settings.GATEWAY_FEEDBACK_WINDOW),
        )
    except redis.RedisError:
        log.warning("gateway: conversation not kept for feedback (Redis unreachable)", exc_info=True)


def conversation_of(row: ServedResponse) -> tuple[list[dict], str] | None:
    """The scrubbed (messages, answer) of a response: from its row when sampled, else from Redis while kept."""
    if row.sampled:
        return row.messages, row.answer
    try:
        raw = redis_client().get(_stash_key(row.id))
    except redis.RedisError:
        log.warning("gateway: stashed conversation unreadable (Redis unreachable)", exc_info=True)
        return None
    if not raw:
        return None
    data = json.loads(raw)
    return data["messages"], data["answer"]
