"""Step d, integrity: each row has the shape its task type needs.

Reasons (the first that applies):
- chat: "empty_turn" (a message with no content), "roles_not_alternating" (after one optional leading system
  message the roles must go user, assistant, user, ...; an unknown role counts here too),
  "not_ending_with_assistant".
- preference: "empty_turn", "roles_not_alternating" (the prompt, alike), "prompt_not_ending_with_user",
  "empty_rejected", "chosen_equals_rejected".
- instruction: "empty_instruction", "empty_output".
- classification: "empty_text", "empty_label", "unknown_label" (not in the recipe's label set, when given).
- any type, when json_output: "invalid_json" (the answer, `normalise.answer_text`, does not parse as JSON).

A classification row without a category gets its label as category (stratification uses it).
"""

from collections.abc import Iterable, Iterator

import orjson

from datasets_app.pipeline.normalise import answer_text
from datasets_app.pipeline.recipe import IntegrityStep
from datasets_app.pipeline.types import Example, StepStats, keep_unless


class Integrity:
    name = "integrity"

    def __init__(self, cfg: IntegrityStep):
        self.labels = set(cfg.labels)
        self.json_output = cfg.json_output

    def __call__(self, examples: Iterable[Example], stats: StepStats) -> Iterator[Example]:
        return keep_unless(examples, stats, self.reason)

    def reason(self, example: Example) -> str:
        f = example.fields
        task_type = example.task_type
        if task_type == "chat":
            reason = _turns_problem(f.get("messages") or [], last="assistant")
        elif task_type == "preference":
            reason = _turns_problem(f.get("prompt") or [], last="user") or _preference_problem(f)
        elif task_type == "instruction":
            reason = _instruction_problem(f)
        else:
            reason = self._classification_problem(example)
        if not reason and self.json_output:
            reason = "" if _parses(answer_text(example)) else "invalid_json"
        return reason

    def _classification_problem(self, example: Example) -> str:
        text, label = example.fields.get("text") or "", example.fields.get("label") or ""
        if not text.strip():
            return "empty_text"
        if not label.strip():
            return "empty_label"
        if self.labels and label not in self.labels:
            return "unknown_label"
        if not example.category:
            example.category = label
        return ""


def _turns_problem(messages: list[dict], last: str) -> str:
    if any(not (m.get("content") or "").strip() for m in messages):
        return "empty_turn"
    roles = [m.get("role") for m in messages]
    if roles and roles[0] == "system":
        roles = roles[1:]
    ending = "not_ending_with_assistant" if last == "assistant" else "prompt_not_ending_with_user"
    if not roles:
        return ending
    expected = ("user", "assistant")
    if any(role != expected[i % 2] for i, role in enumerate(roles)):
        return "roles_not_alternating"
    if roles[-1] != last:
        return ending
    return ""


def _preference_problem(f: dict) -> str:
    rejected = f.get("rejected") or ""
    if not rejected.strip():
        return "empty_rejected"
    if rejected == (f.get("chosen") or ""):
        return "chosen_equals_rejected"
    return ""


def _instruction_problem(f: dict) -> str:
    if not (f.get("instruction") or "").strip():
        return "empty_instruction"
    if not (f.get("output") or "").strip():
        return "empty_output"
    return ""


def _parses(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True
