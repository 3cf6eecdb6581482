"""Per client application rate limit: a Redis fixed window of one minute (INCR + EXPIRE in one round trip).

``rate_limit_per_minute`` 0 means no limit. Over the limit is a 429 in OpenAI's error shape with ``Retry-After``
(seconds to the next window). If Redis cannot be reached the request passes (logged): the gateway keeps serving.
"""

import logging
import math
import time
from functools import lru_cache

import redis
from django.conf import settings

from registry_app.models import ClientApp
from training_app.openai_api.errors import OpenAIError

log = logging.getLogger(__name__)
WINDOW_S = 60


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def redis_client() -> redis.Redis:
    """One connection pool per process (per REDIS_URL)."""
    return _client(settings.REDIS_URL)


class RateLimited(OpenAIError):
    def __init__(self, app: ClientApp, retry_after: int):
        message = f"Rate limit reached for {app.name}: {app.rate_limit_per_minute} requests per minute."
        super().__init__(429, message, code="rate_limit_exceeded")
        self.retry_after = retry_after


def rate_limit_check(app: ClientApp, now: float | None = None) -> None:
    """Count this request in the app's current window; raise RateLimited once the window is full."""
    limit = app.rate_limit_per_minute
    if not limit:
        return
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    key = f"gateway:rate:{app.pk}:{window}"
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_S * 2)
            count = pipe.execute()[0]
    except redis.RedisError:
        log.warning("gateway: rate limit not checked (Redis unreachable)", exc_info=True)
        return
    if count > limit:
        raise RateLimited(app, max(1, math.ceil((window + 1) * WINDOW_S - now)))
