"""Exact-match response cache in Redis, for deterministic requests only (temperature 0: greedy decoding).

Key: sha256 of the version's id and content hash plus the canonical JSON of what a greedy answer depends on (the
endpoint, the messages or prompt, max_tokens, stop). Streamed requests use it too: a hit is streamed back as one
content delta, a streamed miss is stored once its stream ends. Entries live GATEWAY_RESPONSE_CACHE_TTL seconds
(0 turns the cache off). A hit still gets a new response id and its own ServedResponse row (cached=True).
Redis errors count as misses.
"""

import hashlib
import json
import logging

import redis
from django.conf import settings

from registry_app.gateway import metrics
from registry_app.gateway.ratelimit import redis_client
from registry_app.models import ModelVersion

log = logging.getLogger(__name__)


def enabled(req) -> bool:
    return settings.GATEWAY_RESPONSE_CACHE_TTL > 0 and req.deterministic


def cache_key(version: ModelVersion, req) -> str:
    canonical = json.dumps(req.cache_fields(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{version.pk}:{version.sha256}\n{canonical}".encode()).hexdigest()
    return f"gateway:answer:{digest}"


def lookup(version: ModelVersion, req) -> dict | None:
    """{text, prompt_tokens, completion_tokens, finish_reason} of an earlier identical answer, or None."""
    if not enabled(req):
        return None
    try:
        raw = redis_client().get(cache_key(version, req))
    except redis.RedisError:
        log.warning("gateway: response cache unreachable", exc_info=True)
        raw = None
    metrics.CACHE.labels(version.openai_id, "hit" if raw else "miss").inc()
    return json.loads(raw) if raw else None


def store(version: ModelVersion, req, answer: dict) -> None:
    if not enabled(req):
        return
    try:
        redis_client().set(
            cache_key(version, req), json.dumps(answer), ex=settings.GATEWAY_RESPONSE_CACHE_TTL
        )
    except redis.RedisError:
        log.warning("gateway: response not cached (Redis unreachable)", exc_info=True)
