"""The gateway's errors: OpenAI's shape from training_app.openai_api.errors, plus ``Retry-After`` on a 429."""

from registry_app.gateway.ratelimit import RateLimited
from training_app.openai_api.errors import exception_handler


def gateway_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if isinstance(exc, RateLimited) and response is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response
