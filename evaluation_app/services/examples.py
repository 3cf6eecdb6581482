"""The example sets a run scores, as plain EvalExamples: a dataset version's split, a product's regression suite
(its approved error cases), or the general-capability pack. A prompt template (system prompt, few-shot turns) is
applied here, so "prompt only" and "fine-tuned" runs see the same examples and differ only in what the run asks.

An example's ``key`` is the sha256 of its canonical fields (before the template): two runs are comparable exactly
when their key sets are equal, whatever the template or the model.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from datasets_app.models import CaseStatus, DatasetExample, DatasetVersion, ErrorCase
from datasets_app.pipeline.sources import example_from_case

PACK_FILE = Path(__file__).resolve().parent.parent / "packs" / "general.jsonl"


@dataclass
class EvalExample:
    key: str
    position: int
    messages: list[dict] = field(default_factory=list)  # the prompt (causal): ends with the user
    text: str = ""  # the input (classification)
    reference: str = ""  # expected answer, or label
    example_id: int | None = None
    case_id: int | None = None
    category: str = ""
    tags: list[str] = field(default_factory=list)
    context: str = ""  # RAG: the context the answer must stay faithful to
    gold_ids: list[str] | None = None  # RAG: the ids that should have been retrieved
    retrieved_ids: list[str] | None = None
    check: dict | None = None  # general pack: the rule that decides correctness
    fields: dict = field(default_factory=dict)  # the canonical row (what training data would hold)
    task_type: str = ""  # the dataset task type of ``fields``


def content_key(fields: dict) -> str:
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def from_fields(fields: dict, *, task: str, position: int, **extra) -> EvalExample:
    """A dataset row (chat / instruction / classification / preference fields) as an EvalExample."""
    ex = EvalExample(key=content_key(fields), position=position, fields=fields, **extra)
    if task == "classification":
        ex.text, ex.reference = str(fields.get("text", "")), str(fields.get("label", ""))
        return ex
    if "messages" in fields:
        messages = list(fields["messages"])
        cut = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
        ex.messages, ex.reference = messages[:cut], (messages[cut]["content"] if cut < len(messages) else "")
    elif "instruction" in fields:
        user = fields["instruction"] + (f"\n\n{fields['input']}" if fields.get("input") else "")
        system = [{"role": "system", "content": fields["system"]}] if fields.get("system") else []
        ex.messages, ex.reference = (
            [*system, {"role": "user", "content": user}],
            str(fields.get("output", "")),
        )
    elif "prompt" in fields:  # preference pairs: the chosen answer is the reference
        prompt = fields["prompt"]
        ex.messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
        ex.reference = str(fields.get("chosen", ""))
    ex.context = str(fields.get("context", "") or "")
    ex.gold_ids = _ids(fields.get("gold_context_ids"))
    ex.retrieved_ids = _ids(fields.get("retrieved_context_ids"))
    return ex


def _ids(value) -> list[str] | None:
    return [str(v) for v in value] if isinstance(value, list) else None


def version_examples(
    version: DatasetVersion, split: str, *, task: str, limit: int | None
) -> list[EvalExample]:
    rows = DatasetExample.objects.filter(version=version, split=split, augmented="").order_by("position")
    rows = rows.select_related("case").prefetch_related("case__tags")
    out = []
    for row in rows[:limit] if limit else rows:
        tags = [t.name for t in row.case.tags.all()] if row.case_id and row.case else []
        out.append(from_fields(row.fields, task=task, position=len(out), example_id=row.pk, case_id=row.case_id,
                               category=row.category, tags=tags, task_type=version.dataset.task_type))  # fmt: skip
    return out


def regression_cases(product: str):
    cases = ErrorCase.objects.filter(status=CaseStatus.APPROVED, merged_into__isnull=True)
    if product:
        cases = cases.filter(product=product)
    return cases.exclude(expected_output="").order_by("pk").prefetch_related("tags")


def regression_examples(product: str, *, task: str, limit: int | None) -> list[EvalExample]:
    """Every approved case of the product (with an expected answer) is part of its regression suite."""
    dataset_task = "classification" if task == "classification" else "chat"
    out = []
    for case in regression_cases(product)[:limit] if limit else regression_cases(product):
        tags = [t.name for t in case.tags.all()]
        row = {"id": case.pk, "messages": case.messages, "bad_output": case.bad_output,
               "expected_output": case.expected_output, "tags": tags}  # fmt: skip
        example = example_from_case(row, dataset_task)
        if example is None:
            continue
        out.append(from_fields(example.fields, task=task, position=len(out), case_id=case.pk,
                               category=example.category, tags=tags, task_type=dataset_task))  # fmt: skip
    return out


def general_pack() -> list[EvalExample]:
    """The shipped general-capability pack: arithmetic, format following, general questions."""
    out = []
    for line in PACK_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        fields = {"messages": [{"role": "user", "content": item["prompt"]}], "id": item["id"]}
        out.append(EvalExample(key=content_key(fields), position=len(out), messages=fields["messages"][:1],
                               reference=item.get("reference", ""), category=item["category"],
                               check=item["check"]))  # fmt: skip
    return out


def apply_template(messages: list[dict], *, system_prompt: str, few_shot: list[dict]) -> list[dict]:
    """The run's prompt template: its system prompt replaces the example's, its few-shot turns come first."""
    if not (system_prompt or few_shot):
        return messages
    rest = [m for m in messages if m.get("role") != "system"]
    system = [{"role": "system", "content": system_prompt}] if system_prompt else [
        m for m in messages if m.get("role") == "system"
    ]  # fmt: skip
    shots = []
    for shot in few_shot:
        shots += [
            {"role": "user", "content": shot["user"]},
            {"role": "assistant", "content": shot["assistant"]},
        ]
    return [*system, *shots, *rest]


def general_dataset_examples(*, task: str, per_version: int = 200) -> list[EvalExample]:
    """Test rows of every dataset marked "general" (its newest ready version) whose task the model can take."""
    from datasets_app.models import Dataset, VersionStatus

    out: list[EvalExample] = []
    for dataset in Dataset.objects.filter(is_general=True).order_by("name"):
        if (task == "classification") != (dataset.task_type == "classification"):
            continue
        version = dataset.versions.filter(status=VersionStatus.READY).order_by("-number").first()
        if version is None or not (version.counts or {}).get("test"):
            continue
        for example in version_examples(version, "test", task=task, limit=per_version):
            example.position, example.category = len(out), f"{dataset.name}"
            out.append(example)
    return out
