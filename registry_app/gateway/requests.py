"""OpenAI request bodies for /v1/chat/completions and /v1/completions, checked at the edge.

Every problem is gathered and answered at once as a 400 in OpenAI's shape (``param`` names the first, ``problems``
lists them all). Fields OpenAI defines that change nothing here (frequency_penalty, logprobs off, …) are ignored,
as the official clients send some of them; ``n`` must be 1. ``temperature`` 0 decodes greedily (deterministic, so
the response cache may answer); above 0 it samples (seeded by ``seed``, else a random seed).
"""

import math
import secrets
from dataclasses import dataclass, field

from django.conf import settings

from training_app.openai_api.errors import invalid

ROLES = ("system", "user", "assistant")
MAX_STOP = 4
MAX_USER_CHARS = 256


@dataclass
class GenerationRequest:
    model: str
    endpoint: str  # "chat" | "completion"
    messages: list[dict] = field(default_factory=list)  # chat
    prompt: str = ""  # completion
    max_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    user: str = ""

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0

    def conversation(self) -> list[dict]:
        """What the error notebook stores: the chat, or the prompt as one user message."""
        return self.messages if self.endpoint == "chat" else [{"role": "user", "content": self.prompt}]

    def config(self):
        """The engine's GenerateConfig (imported here: workers.generate.config has no torch)."""
        from workers.generate.config import GenerateConfig

        greedy = self.deterministic
        return GenerateConfig(
            max_new_tokens=self.max_tokens, do_sample=not greedy, temperature=1.0 if greedy else self.temperature,
            top_p=self.top_p, seed=self._seed(greedy),
            stop=list(self.stop),
        )  # fmt: skip

    def _seed(self, greedy: bool) -> int:
        """The client's seed; else 0 when greedy (seed unused: equal settings batch together), else random."""
        if self.seed is not None:
            return self.seed
        return 0 if greedy else secrets.randbelow(2**31)

    def cache_fields(self) -> dict:
        """What a greedy answer depends on, for the response cache's key."""
        body = self.messages if self.endpoint == "chat" else self.prompt
        return {"endpoint": self.endpoint, "input": body, "max_tokens": self.max_tokens, "stop": self.stop}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _content(value, where: str, problems: list) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        texts = [p.get("text") for p in value]
        if all(isinstance(t, str) for t in texts):
            return "".join(texts)
    problems.append((where, "must be a string (or a list of text parts)"))
    return None


def _messages(value, problems: list) -> list[dict]:
    if not isinstance(value, list) or not value:
        problems.append(("messages", "must be a non-empty list of {role, content} objects"))
        return []
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            problems.append((f"messages[{i}]", "must be an object with role and content"))
            continue
        role = message.get("role")
        if role not in ROLES:
            problems.append((f"messages[{i}].role", f"must be one of {', '.join(ROLES)} (got {role!r})"))
        content = _content(message.get("content"), f"messages[{i}].content", problems)
        if role in ROLES and content is not None:
            messages.append({"role": role, "content": content})
    return messages


def _prompt(value, problems: list) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        problems.append(("prompt", "must be a string (or a list of exactly one string)"))
        return ""
    return value


def _stop(value, problems: list) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or not all(isinstance(s, str) and s for s in stops)
        or len(stops) > MAX_STOP
    ):
        problems.append(("stop", f"must be a non-empty string or a list of at most {MAX_STOP} of them"))
        return []
    return stops


def _sampling(data: dict, req: GenerationRequest, problems: list) -> None:
    cap = settings.GATEWAY_MAX_NEW_TOKENS
    raw = data.get("max_tokens", data.get("max_completion_tokens"))
    if raw is None:
        req.max_tokens = cap
    elif isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= cap:
        req.max_tokens = raw
    else:
        problems.append(("max_tokens", f"must be a whole number from 1 to {cap} (got {raw!r})"))
    temperature = data.get("temperature")
    if temperature is not None:
        if _number(temperature) and 0 <= temperature <= 2:
            req.temperature = float(temperature)
        else:
            problems.append(("temperature", f"must be a number from 0 to 2 (got {temperature!r})"))
    top_p = data.get("top_p")
    if top_p is not None:
        if _number(top_p) and 0 < top_p <= 1:
            req.top_p = float(top_p)
        else:
            problems.append(("top_p", f"must be a number in (0, 1] (got {top_p!r})"))
    seed = data.get("seed")
    if seed is not None:
        if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63:
            req.seed = seed
        else:
            problems.append(("seed", f"must be a whole number ≥ 0 (got {seed!r})"))


def _flags(data: dict, req: GenerationRequest, problems: list) -> None:
    n = data.get("n")
    if n is not None and (n != 1 or isinstance(n, bool)):
        problems.append(("n", f"only n=1 is served (got {n!r})"))
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        problems.append(("stream", f"must be true or false (got {stream!r})"))
    req.stream = stream is True
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        problems.append(("stream_options", "must be an object"))
    req.include_usage = req.stream and isinstance(options, dict) and options.get("include_usage") is True
    user = data.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > MAX_USER_CHARS):
        problems.append(("user", f"must be a string of at most {MAX_USER_CHARS} characters"))
    elif user:
        req.user = user


def parse(data, endpoint: str) -> GenerationRequest:
    """The validated request; OpenAIError 400 naming every bad parameter."""
    if not isinstance(data, dict):
        raise invalid([("", "the request body must be a JSON object")])
    problems: list[tuple[str, str]] = []
    model = data.get("model")
    if not isinstance(model, str) or not model.strip() or "\x00" in model:
        problems.append(("model", "is required: a deployment name, a model family or family:vN"))
    req = GenerationRequest(model=model if isinstance(model, str) else "", endpoint=endpoint)
    if endpoint == "chat":
        req.messages = _messages(data.get("messages"), problems)
    else:
        req.prompt = _prompt(data.get("prompt"), problems)
    _sampling(data, req, problems)
    req.stop = _stop(data.get("stop"), problems)
    _flags(data, req, problems)
    if problems:
        raise invalid(problems)
    return req
