"""OpenAI's error shape for every answer of the /v1/ fine-tuning API, including DRF's own 401, 403, 404 and 405."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

log = logging.getLogger(__name__)

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
         404: "invalid_request_error", 405: "invalid_request_error", 409: "invalid_request_error",
         415: "invalid_request_error", 500: "server_error"}  # fmt: skip


class OpenAIError(Exception):
    """A user's mistake, answered as ``{"error": {...}}`` with ``status``; ``problems`` lists every one found."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 problems: list[dict] | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.problems = (
            status,
            message,
            param,
            code,
            problems,
        )


def invalid(problems: list[tuple[str, str]], code: str | None = None) -> OpenAIError:
    """One 400 for every (param, message) problem: the message lists them all, param names the first."""
    message = "; ".join(f"{param}: {msg}" if param else msg for param, msg in problems)
    listed = [{"param": param or None, "message": msg} for param, msg in problems]
    return OpenAIError(400, message, param=problems[0][0] or None, code=code, problems=listed)


def not_found(kind: str, value: str, param: str) -> OpenAIError:
    return OpenAIError(404, f"No such {kind}: {value}", param=param, code="not_found")


def error_response(error: OpenAIError, headers: dict | None = None) -> Response:
    body = {"message": error.message, "type": TYPES.get(error.status, "invalid_request_error"),
            "param": error.param, "code": error.code}  # fmt: skip
    if error.problems and len(error.problems) > 1:
        body["problems"] = error.problems
    # the openai client retries 409 and 5xx unless told not to; a user's mistake does not get better by retrying
    return Response(
        {"error": body}, status=error.status, headers={"x-should-retry": "false", **(headers or {})}
    )


def _from_drf(exc: exceptions.APIException) -> OpenAIError:
    if isinstance(exc, exceptions.NotAuthenticated):
        message = "You didn't provide an API key: send 'Authorization: Bearer <portal API token>'."
        return OpenAIError(401, message, code="not_authenticated")
    if isinstance(exc, exceptions.AuthenticationFailed):
        return OpenAIError(401, f"Incorrect API key provided: {exc.detail}", code="invalid_api_key")
    if isinstance(exc, exceptions.PermissionDenied):
        return OpenAIError(403, str(exc.detail), code="permission_denied")
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"": exc.detail}
        return invalid([(str(k), str(m)) for k, msgs in detail.items() for m in _as_list(msgs)])
    return OpenAIError(exc.status_code, str(exc.detail), code=str(exc.default_code))


def _as_list(messages) -> list:
    return messages if isinstance(messages, list) else [messages]


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = OpenAIError(404, str(exc) or "Not found.", code="not_found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, exceptions.APIException):
        header = getattr(exc, "auth_header", None)  # set by APIView.handle_exception for a 401
        return error_response(_from_drf(exc), {"WWW-Authenticate": header} if header else None)
    if isinstance(exc, OpenAIError):
        return error_response(exc)
    log.exception("unhandled error in the OpenAI-compatible API", exc_info=exc)
    return error_response(OpenAIError(500, "Internal server error; it has been logged.", code="server_error"))
