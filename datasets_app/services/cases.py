"""One case at a time: create, edit (with history and stale-edit detection), status, comments, tags, merge, bulk."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from datasets_app.models import CaseComment, CaseEvent, CaseStatus, ErrorCase, Source, Tag
from datasets_app.services.prepare import Scrubber, prepare_content

EDITABLE = (
    "expected_output",
    "task_type",
    "severity",
    "product",
    "feature",
    "model_version",
    "metadata",
    "assignee",
)


class StaleEdit(Exception):
    """Someone else saved the case after this editor loaded it."""

    def __init__(self, case: ErrorCase):
        who = case.updated_by.get_username() if case.updated_by else "someone"
        super().__init__(
            f"{who} changed case #{case.pk} at {case.updated_at:%Y-%m-%d %H:%M:%S}, after you opened it. "
            "Reload to see their version; your edit was not saved."
        )
        self.case = case


class DuplicateCase(Exception):
    def __init__(self, existing_id: int):
        super().__init__(f"an identical case already exists: #{existing_id}")
        self.existing_id = existing_id


def _tags(names: list[str]) -> list[Tag]:
    found = {t.name: t for t in Tag.objects.filter(name__in=names, is_active=True)}
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise ValidationError({"tags": f"unknown tag(s): {', '.join(unknown)} (admins manage the taxonomy)"})
    return [found[n] for n in names]


def _display(value) -> object:
    if isinstance(value, AbstractBaseUser):
        return value.get_username()
    return value


@transaction.atomic
def case_create(
    *,
    user: AbstractBaseUser | None,
    messages: list,
    bad_output: str,
    expected_output: str = "",
    tags: list[str] = (),
    source: str = Source.MANUAL,
    scrubber: Scrubber | None = None,
    **fields,
) -> ErrorCase:
    """Create one case; exact duplicates of an existing case are refused with its id."""
    scrubber = scrubber or Scrubber.from_database()
    content = prepare_content(scrubber, messages, bad_output, expected_output, fields.pop("metadata", None))
    existing = ErrorCase.objects.filter(fingerprint=content.fingerprint, merged_into=None).values_list(
        "pk", flat=True
    )
    if existing:
        raise DuplicateCase(existing[0])
    tag_rows = _tags(list(tags))
    status = CaseStatus.CORRECTED if content.expected_output else CaseStatus.NEW
    case = ErrorCase(
        messages=content.messages,
        bad_output=content.bad_output,
        expected_output=content.expected_output,
        flags=content.flags,
        fingerprint=content.fingerprint,
        search_text=content.search_text,
        metadata=content.metadata,
        source=source,
        status=status,
        created_by=user,
        updated_by=user,
        **fields,
    )
    case.full_clean(exclude=["tags", "minhash", "fingerprint", "search_text"])
    case.save()
    case.tags.set(tag_rows)
    CaseEvent.objects.create(case=case, actor=user, kind="created", note=f"source: {source}")
    return case


@transaction.atomic
def case_update(*, case_id: int, user: AbstractBaseUser, version: int, changes: dict) -> ErrorCase:
    """Apply field changes; refuse if the case changed since `version`; record every change in the history."""
    case = ErrorCase.objects.select_for_update(of=("self",)).select_related("updated_by").get(pk=case_id)
    if case.version != version:
        raise StaleEdit(case)
    diff = {}
    tag_names = changes.pop("tags", None)
    for name, new in changes.items():
        if name not in EDITABLE:
            raise ValidationError({name: "this field cannot be edited"})
        old = getattr(case, name)
        if old != new:
            diff[name] = [_display(old), _display(new)]
            setattr(case, name, new)
    if tag_names is not None:
        old_names = sorted(case.tags.values_list("name", flat=True))
        if sorted(tag_names) != old_names:
            case.tags.set(_tags(list(tag_names)))
            diff["tags"] = [old_names, sorted(tag_names)]
    if (
        "expected_output" in diff
        and case.expected_output
        and case.status in (CaseStatus.NEW, CaseStatus.TRIAGED)
    ):
        diff["status"] = [case.status, CaseStatus.CORRECTED]
        case.status = CaseStatus.CORRECTED
    if not diff:
        return case
    _touch(case, user)
    case.full_clean(exclude=["tags", "minhash"])
    case.save()
    CaseEvent.objects.create(case=case, actor=user, kind="edited", changes=diff)
    return case


def _touch(case: ErrorCase, user) -> None:
    case.version += 1
    case.updated_by = user
    case.updated_at = timezone.now()


def check_transition(case: ErrorCase, status: str, reason: str = "") -> None:
    if not case.can_move_to(status):
        raise ValidationError({"status": f"case #{case.pk} cannot go from {case.status} to {status}"})
    if status == CaseStatus.APPROVED and not case.expected_output.strip():
        raise ValidationError(
            {"expected_output": f"case #{case.pk} has no expected output; correct it first"}
        )
    if status == CaseStatus.REJECTED and not reason.strip():
        raise ValidationError({"reason": "a rejection needs a reason"})


@transaction.atomic
def case_set_status(
    *, case_id: int, user: AbstractBaseUser, status: str, reason: str = "", version: int | None = None
) -> ErrorCase:
    case = ErrorCase.objects.select_for_update(of=("self",)).select_related("updated_by").get(pk=case_id)
    if version is not None and case.version != version:
        raise StaleEdit(case)
    check_transition(case, status, reason)
    diff = {"status": [case.status, status]}
    case.status = status
    if status == CaseStatus.REJECTED:
        diff["rejection_reason"] = [case.rejection_reason, reason.strip()]
        case.rejection_reason = reason.strip()
    _touch(case, user)
    case.save()
    CaseEvent.objects.create(case=case, actor=user, kind="status", changes=diff, note=reason.strip())
    return case


@transaction.atomic
def case_comment_add(*, case_id: int, user: AbstractBaseUser, body: str) -> CaseComment:
    body = body.strip()
    if not body:
        raise ValidationError({"body": "a comment cannot be empty"})
    case = ErrorCase.objects.get(pk=case_id)
    comment = CaseComment.objects.create(case=case, author=user, body=body)
    CaseEvent.objects.create(case=case, actor=user, kind="comment", note=body[:500])
    return comment


@transaction.atomic
def cases_merge(*, primary_id: int, other_ids: list[int], user: AbstractBaseUser) -> ErrorCase:
    """Fold a group of similar cases into one: the others point at it and leave the list; history is kept."""
    ids = sorted(set(other_ids) - {primary_id})
    if not ids:
        raise ValidationError({"cases": "choose at least one other case to merge into the primary one"})
    primary = ErrorCase.objects.select_for_update().get(pk=primary_id)
    others = list(ErrorCase.objects.select_for_update().filter(pk__in=ids, merged_into=None))
    if len(others) != len(ids):
        raise ValidationError({"cases": "some of the cases do not exist or were already merged"})
    tag_ids = set(primary.tags.values_list("pk", flat=True))
    for other in others:
        tag_ids |= set(other.tags.values_list("pk", flat=True))
        other.merged_into = primary
        _touch(other, user)
        other.save(update_fields=["merged_into", "version", "updated_by", "updated_at"])
        CaseEvent.objects.create(
            case=other, actor=user, kind="merged", note=f"merged into case #{primary.pk}"
        )
    primary.tags.set(tag_ids)
    primary.metadata = {
        **primary.metadata,
        "merged_from": sorted({*primary.metadata.get("merged_from", []), *ids}),
    }
    _touch(primary, user)
    primary.save()
    CaseEvent.objects.create(case=primary, actor=user, kind="merged", changes={"merged_from": [None, ids]})
    return primary


@dataclass
class BulkResult:
    done: list[int]
    skipped: dict[int, str]  # case id -> why


def cases_bulk_action(
    *, ids: list[int], user: AbstractBaseUser, action: str, value: str = "", reason: str = ""
) -> BulkResult:
    """tag, untag, assign, status or delete on a selection; each case succeeds or is skipped with its reason.

    `reason` is the rejection reason when the action sets the status to rejected."""
    result = BulkResult(done=[], skipped={})
    if action == "delete":
        with transaction.atomic():
            deleted = list(ErrorCase.objects.filter(pk__in=ids).values_list("pk", flat=True))
            ErrorCase.objects.filter(pk__in=deleted).delete()
        result.done = deleted
        return result
    for case_id in ids:
        try:
            _bulk_one(case_id, user, action, value, reason=reason)
        except (ValidationError, ErrorCase.DoesNotExist) as exc:
            result.skipped[case_id] = problem_text(exc)
        else:
            result.done.append(case_id)
    return result


def _bulk_one(case_id: int, user, action: str, value: str, *, reason: str = "") -> None:
    if action == "status":
        case_set_status(case_id=case_id, user=user, status=value, reason=reason)
        return
    case = ErrorCase.objects.get(pk=case_id)
    if action in ("tag", "untag"):
        names = set(case.tags.values_list("name", flat=True))
        names = names | {value} if action == "tag" else names - {value}
        case_update(case_id=case_id, user=user, version=case.version, changes={"tags": sorted(names)})
    elif action == "assign":
        from django.contrib.auth import get_user_model

        assignee = get_user_model().objects.filter(pk=value).first() if value else None
        case_update(case_id=case_id, user=user, version=case.version, changes={"assignee": assignee})
    else:
        raise ValidationError({"action": f"unknown bulk action {action!r}"})


def problem_text(exc: Exception) -> str:
    """A refusal as one line naming the field: "expected_output: case #5 has no expected output"."""
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(m)}" if field != "__all__" else " ".join(m)
            for field, m in exc.message_dict.items()
        )
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)
