"""/v1/chat/completions and /v1/completions for client applications, answered in OpenAI's exact shapes.

A request: authenticate the client token (auth) -> count it against the app's rate limit (ratelimit) -> validate
the body (requests) -> route the model name to a version (routing) -> answer from the response cache or the model
(respcache, engine) -> one ServedResponse row and the Prometheus counts (requestlog), written once the whole
answer has been sent (``after_sent``; a stream's row just before its ``[DONE]``). Every answer carries
``X-Model-Version: family:vN`` and ``X-Variant``. ``stream: true`` answers server-sent events, one chunk per delta,
then ``data: [DONE]``; the stream's first delta is computed before the response starts, so a prompt the engine
refuses is still a plain 400. Engine errors: ServeError (the engine refusing the request) -> 400; anything else
-> 500, logged. Errors are OpenAI's ``{"error": {...}}``; the client is told not to retry a 4xx.
"""

import json
import logging
import secrets
import time
from collections.abc import Iterator

from django.http import JsonResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from registry_app.gateway import engine, respcache
from registry_app.gateway.auth import ClientOnlyAuthentication, IsClientApp, client_app
from registry_app.gateway.errors import gateway_exception_handler
from registry_app.gateway.ratelimit import RateLimited, rate_limit_check
from registry_app.gateway.requestlog import count, record
from registry_app.gateway.requests import GenerationRequest, parse
from registry_app.gateway.routing import Route, resolve, user_key_of
from registry_app.models import Endpoint
from training_app.openai_api.errors import OpenAIError

log = logging.getLogger(__name__)
PREFIX = {Endpoint.CHAT: "chatcmpl-", Endpoint.COMPLETION: "cmpl-"}
OBJECT = {Endpoint.CHAT: "chat.completion", Endpoint.COMPLETION: "text_completion"}


@extend_schema(exclude=True)
class GatewayApi(APIView):
    """Client applications only (``client_app_auth``: tests/llmops/test_roles.py leaves these to their own tests)."""

    client_app_auth = True
    authentication_classes = [ClientOnlyAuthentication]
    permission_classes = [IsClientApp]
    parser_classes = [JSONParser]
    throttle_classes: list = []

    def get_exception_handler(self):
        return gateway_exception_handler


class ChatCompletionsApi(GatewayApi):
    def post(self, request):
        return generate(request, Endpoint.CHAT)


class CompletionsApi(GatewayApi):
    def post(self, request):
        return generate(request, Endpoint.COMPLETION)


class Call:
    """One generation request in flight: what was asked, where it went, and how to log it."""

    def __init__(self, request, endpoint: str):
        self.started, self.endpoint, self.app = time.perf_counter(), endpoint, client_app(request)
        self.id = PREFIX[endpoint] + secrets.token_hex(12)
        self.created = int(time.time())
        self.req: GenerationRequest | None = None
        self.route: Route | None = None
        self.user_key = ""

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def log(self, *, status: int = 200, error: str = "", answer: dict | None = None, cached: bool = False,
            error_type: str = "", latency_s: float | None = None) -> None:  # fmt: skip
        answer = answer or {}
        record(
            response_id=self.id, app=self.app, endpoint=self.endpoint, route=self.route, user_key=self.user_key,
            status_code=status, error=error, latency_s=self.elapsed() if latency_s is None else latency_s,
            cached=cached,
            prompt_tokens=answer.get("prompt_tokens", 0), completion_tokens=answer.get("completion_tokens", 0),
            streamed=bool(self.req and self.req.stream), answer=answer.get("text", ""),
            conversation=self.req.conversation() if self.req and status == 200 else None, error_type=error_type,
        )  # fmt: skip

    def headers(self, cached: bool) -> dict:
        return {"X-Model-Version": self.route.version.openai_id, "X-Variant": self.route.variant,
                "X-Response-Cache": "hit" if cached else "miss"}  # fmt: skip

    def choice(self, text: str, finish_reason: str | None, delta: bool = False) -> dict:
        if self.endpoint == Endpoint.COMPLETION:
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        key = "delta" if delta else "message"
        body = {"content": text} if delta else {"role": "assistant", "content": text}
        return {"index": 0, key: body, "logprobs": None, "finish_reason": finish_reason}

    def body(self, choices: list, usage: dict | None = None, chunk: bool = False) -> dict:
        kind = OBJECT[self.endpoint] + (".chunk" if chunk and self.endpoint == Endpoint.CHAT else "")
        body = {"id": self.id, "object": kind, "created": self.created, "model": self.req.model,
                "system_fingerprint": None, "choices": choices}  # fmt: skip
        if usage is not None or not chunk:
            body["usage"] = usage
        return body


def usage_of(answer: dict) -> dict:
    p, c = answer["prompt_tokens"], answer["completion_tokens"]
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def answer_of(generation) -> dict:
    return {"text": generation.text, "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.new_tokens, "finish_reason": generation.finish_reason}  # fmt: skip


def generate(request, endpoint: str):
    call = Call(request, endpoint)
    try:
        rate_limit_check(call.app)
    except RateLimited:
        count(None, endpoint, 429)
        raise
    try:
        call.req = parse(request.data, endpoint)
        call.user_key, _ = user_key_of(call.req.user, request.headers.get("X-User-Id"))
        call.route = resolve(call.req.model, call.user_key)
    except OpenAIError as e:
        call.log(status=e.status, error=e.message)
        raise
    cached = respcache.lookup(call.route.version, call.req)
    if call.req.stream:
        return stream(call, cached)
    answer = cached or run_model(call)
    body = call.body([call.choice(answer["text"], answer["finish_reason"])], usage_of(answer))
    response = JsonResponse(body, headers=call.headers(cached is not None))
    latency = call.elapsed()
    return after_sent(response, lambda: call.log(answer=answer, cached=cached is not None, latency_s=latency))


def after_sent(response, write):
    """Run ``write`` (the log row) when the server closes the response, after sending it: the client does not
    wait for the INSERT. It runs before Django's own ``close()``, which may end the database connection; once,
    however often the response is closed (Django's test client and some WSGI wrappers close it twice)."""
    close, pending = response.close, [write]

    def closing() -> None:
        try:
            if pending:
                pending.pop()()
        except Exception:
            log.exception("gateway: the request log row could not be written")
        finally:
            close()

    response.close = closing
    return response


def _model_input(call: Call):
    return call.req.messages if call.endpoint == Endpoint.CHAT else call.req.prompt


def _engine_failure(call: Call, exc: Exception, loading: bool = False) -> OpenAIError:
    """A ServeError while answering: the engine refused this request (400). Failing to load the version, or
    anything else, is ours (500, logged)."""
    if isinstance(exc, engine.serve_error()) and not loading:
        call.log(status=400, error=str(exc), error_type="engine")
        param = "messages" if call.endpoint == Endpoint.CHAT else "prompt"
        return OpenAIError(400, str(exc), param=param, code="engine_refused")
    log.exception("gateway: %s failed on %s", call.id, call.route.version.openai_id, exc_info=exc)
    call.log(status=500, error=f"{type(exc).__name__}: {exc}", error_type="engine" if loading else "server")
    what = "could not be loaded" if loading else "failed to answer"
    return OpenAIError(500, f"The model {what} ({call.id}); it has been logged.", code="server_error")


def _load(call: Call):
    try:
        return engine.served(call.route.version)
    except Exception as exc:
        raise _engine_failure(call, exc, loading=True) from exc


def run_model(call: Call) -> dict:
    model = _load(call)
    try:
        method = model.chat if call.endpoint == Endpoint.CHAT else model.complete
        answer = answer_of(method(_model_input(call), call.req.config()))
    except Exception as exc:
        raise _engine_failure(call, exc) from exc
    respcache.store(call.route.version, call.req, answer)
    return answer


def _sse(body: dict) -> str:
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def stream(call: Call, cached: dict | None) -> StreamingHttpResponse:
    if cached is not None:
        deltas: Iterator = iter([cached["text"], cached])
    else:
        model = _load(call)
        try:
            method = model.stream_chat if call.endpoint == Endpoint.CHAT else model.stream_complete
            deltas = iter(method(_model_input(call), call.req.config()))
            first = next(deltas)  # a refused prompt fails here, before the response starts
        except Exception as exc:
            raise _engine_failure(call, exc) from exc
        deltas = _chain(first, deltas)
    response = StreamingHttpResponse(events(call, deltas, cached), content_type="text/event-stream")
    for name, value in {**call.headers(cached is not None), "Cache-Control": "no-cache",
                        "X-Accel-Buffering": "no"}.items():  # fmt: skip
        response[name] = value
    return response


def _chain(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def events(call: Call, deltas: Iterator, cached: dict | None) -> Iterator[str]:
    """The SSE body; the row is written when the stream ends (499 when the client leaves before that)."""
    logged = False
    try:
        if call.endpoint == Endpoint.CHAT:
            role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                    "finish_reason": None}  # fmt: skip
            yield _sse(call.body([role], chunk=True))
        answer = cached
        try:
            for piece in deltas:
                if isinstance(piece, str):
                    if piece:
                        yield _sse(call.body([call.choice(piece, None, delta=True)], chunk=True))
                else:
                    answer = piece if isinstance(piece, dict) else answer_of(piece)
            if answer is None:
                raise RuntimeError("the stream ended without a final generation")
        except Exception as exc:
            logged, failure = True, _engine_failure(call, exc)
            yield _sse({"error": {"message": failure.message, "type": "server_error", "code": failure.code}})
            return
        if cached is None:
            respcache.store(call.route.version, call.req, answer)
        yield _sse(call.body([call.choice("", answer["finish_reason"], delta=True)], chunk=True))
        if call.req.include_usage:
            yield _sse(call.body([], usage_of(answer), chunk=True))
        logged = True
        call.log(answer=answer, cached=cached is not None)
        yield "data: [DONE]\n\n"
    finally:
        if not logged:
            call.log(status=499, error="the client closed the stream before its end")
