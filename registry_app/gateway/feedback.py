"""POST /v1/feedback: an end user's thumbs up or down on a response, optionally with a correction and a comment.

A thumbs down whose conversation is still known (sampled on the row, or kept in Redis for GATEWAY_FEEDBACK_WINDOW)
becomes an ErrorCase in the error notebook: the scrubbed conversation, the answer as the bad output, the correction
as the expected output, the version that answered, source "user feedback". An identical case already there is
linked instead. Feedback counts against the app's rate limit. A response another application got is "unknown" to this one (404, as for an id that never was).

Body: {"response_id", "rating": "up"|"down" (also "thumbs_up"/"thumbs_down", 1/-1, true/false), "correction"?,
"comment"?}. Answer: {"id": "feedback-<n>", "object": "feedback", "response_id", "rating", "case_id", "case"}
where ``case`` says what happened to the case ("created", "linked", "none: …").
"""

import time

from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.response import Response

from datasets_app.models import Source
from datasets_app.services.cases import DuplicateCase, case_create
from registry_app.gateway.auth import client_app
from registry_app.gateway.ratelimit import rate_limit_check
from registry_app.gateway.requestlog import conversation_of, storable
from registry_app.gateway.views import GatewayApi
from registry_app.models import ClientApp, Feedback, ModelTask, Rating, ServedResponse
from training_app.openai_api.errors import OpenAIError, invalid

RATINGS = {"up": Rating.UP, "thumbs_up": Rating.UP, "+1": Rating.UP, "1": Rating.UP,
           "down": Rating.DOWN, "thumbs_down": Rating.DOWN, "-1": Rating.DOWN}  # fmt: skip
MAX_TEXT = 20_000
ROW_WAIT_S = 2.0  # a response's row is written just after its answer is sent, so its feedback may come first


def _rating(value) -> str | None:
    if isinstance(value, bool):
        return Rating.UP if value else Rating.DOWN
    if isinstance(value, int):
        value = str(value)
    return RATINGS.get(value.strip().lower()) if isinstance(value, str) else None


def parse_feedback(data) -> dict:
    if not isinstance(data, dict):
        raise invalid([("", "the request body must be a JSON object")])
    problems, clean = [], {}
    response_id = data.get("response_id")
    if not isinstance(response_id, str) or not response_id.strip() or "\x00" in response_id:
        problems.append(("response_id", "is required: the id of the completion being rated"))
    clean["response_id"] = response_id
    clean["rating"] = _rating(data.get("rating"))
    if clean["rating"] is None:
        problems.append(("rating", f'must be "up" or "down" (got {data.get("rating")!r})'))
    for name in ("correction", "comment"):
        value = data.get(name) or ""
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            problems.append((name, f"must be a string of at most {MAX_TEXT} characters"))
        clean[name] = storable(value) if isinstance(value, str) else ""
    if problems:
        raise invalid(problems)
    return clean


def _case(row: ServedResponse, feedback: Feedback) -> tuple[int | None, str]:
    conversation = conversation_of(row)
    if conversation is None:
        return (
            None,
            "none: the conversation is no longer kept (not sampled, and its feedback window has passed)",
        )
    messages, answer = conversation
    if not messages or not answer:
        return None, "none: the response had no answer to correct"
    version = row.version
    task = "classification" if version and version.model.task == ModelTask.CLASSIFICATION else "chat"
    metadata = {"response_id": row.id, "version_id": version.pk if version else None, "variant": row.variant,
                "deployment": row.deployment.name if row.deployment else "", "comment": feedback.comment}  # fmt: skip
    try:
        case = case_create(
            user=None, messages=messages, bad_output=answer, expected_output=feedback.correction,
            source=Source.USER_FEEDBACK, model_version=version.openai_id if version else "", task_type=task,
            metadata=metadata,
        )  # fmt: skip
    except DuplicateCase as duplicate:
        return duplicate.existing_id, "linked: an identical case was already in the error notebook"
    except ValidationError as exc:
        return None, f"none: the error notebook refused the case ({'; '.join(exc.messages)})"
    return case.pk, "created"


@transaction.atomic
def feedback_create(*, app: ClientApp, response_id: str, rating: str, correction: str = "",
                    comment: str = "") -> tuple[Feedback, str]:  # fmt: skip
    """Record the feedback; a thumbs down becomes (or links) an error case. Returns (feedback, what happened)."""
    row = (
        ServedResponse.objects.select_related("version__model", "deployment")
        .filter(pk=response_id, app=app)
        .first()
    )
    if row is None:
        raise OpenAIError(404, f"No such response: {response_id}", param="response_id", code="not_found")
    feedback = Feedback(response=row, rating=rating, correction=correction, comment=comment, app=app)
    outcome = "none: only a thumbs down becomes an error case"
    if rating == Rating.DOWN:
        feedback.case_id, outcome = _case(row, feedback)
    feedback.save()
    return feedback, outcome


def response_row_wait(*, app: ClientApp, response_id: str) -> None:
    """Wait up to ROW_WAIT_S for the row of a response id the gateway hands out (chatcmpl-…, cmpl-…): the
    client may rate the answer before the thread that sent it has written its row. Outside any transaction, so
    each look sees what has been committed since."""
    if not response_id.startswith(("chatcmpl-", "cmpl-")):
        return
    deadline = time.monotonic() + ROW_WAIT_S
    while not ServedResponse.objects.filter(pk=response_id, app=app).exists():
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)


class FeedbackApi(GatewayApi):
    def post(self, request):
        rate_limit_check(client_app(request))  # feedback counts against the app's limit like any request
        data = parse_feedback(request.data)
        response_row_wait(app=client_app(request), response_id=data["response_id"])
        feedback, outcome = feedback_create(app=client_app(request), **data)
        return Response({"id": f"feedback-{feedback.pk}", "object": "feedback",
                         "response_id": feedback.response_id, "rating": feedback.rating,
                         "case_id": feedback.case_id, "case": outcome})  # fmt: skip
