"""The audit log is append-only: the model, its queryset, PostgreSQL itself and the admin all refuse to change it."""

import pytest
from django.db import DatabaseError, connection, transaction

from registry_app.models import AuditEntry, AuditImmutable
from registry_app.services.promotion import audit


@pytest.fixture
def entry(world):
    return audit(
        actor=world.users["Architect"], action="promotion.approved", comment="ok", snapshot={"gate": []}
    )


def test_an_entry_cannot_be_saved_again_or_deleted(entry):
    entry.comment = "rewritten"
    with pytest.raises(AuditImmutable):
        entry.save()
    with pytest.raises(AuditImmutable):
        entry.delete()
    assert AuditEntry.objects.get(pk=entry.pk).comment == "ok"


def test_the_queryset_refuses_update_and_delete(entry):
    with pytest.raises(AuditImmutable):
        AuditEntry.objects.filter(pk=entry.pk).update(comment="rewritten")
    with pytest.raises(AuditImmutable):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "sql",
    ["UPDATE registry_app_auditentry SET comment = 'rewritten'", "DELETE FROM registry_app_auditentry"],
)
def test_raw_sql_cannot_change_the_log_on_postgresql(entry, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditEntry.objects.get(pk=entry.pk).comment == "ok"


def test_the_admin_shows_entries_but_offers_no_change_or_delete(world, entry):
    admin = world.users["Admin"]
    admin.is_superuser = True
    admin.save()
    client = world.client("Admin")
    url = f"/admin/registry_app/auditentry/{entry.pk}/change/"
    assert client.get("/admin/registry_app/auditentry/").status_code == 200
    page = client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(url, {"action": "tampered", "comment": "x"}).status_code == 403
    assert client.get(f"/admin/registry_app/auditentry/{entry.pk}/delete/").status_code == 403
    assert (
        client.post(f"/admin/registry_app/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    changelist = client.post(
        "/admin/registry_app/auditentry/", {"action": "delete_selected", "_selected_action": [entry.pk]}
    )
    assert changelist.status_code in (200, 302)
    assert client.get("/admin/registry_app/auditentry/add/").status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).comment == "ok"
