"""Roles come from a migration and from an idempotent command; demo users' passwords are printed once."""

import re
from io import StringIO

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from llmops.roles import ROLES


def bootstrap(*args) -> str:
    out = StringIO()
    call_command("bootstrap", *args, stdout=out)
    return out.getvalue()


def test_the_migration_already_created_every_role(db):
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)


def test_bootstrap_is_idempotent(db):
    Group.objects.all().delete()
    assert "created" in bootstrap()
    assert bootstrap().strip() == "Roles: all present."
    assert Group.objects.filter(name__in=ROLES).count() == len(ROLES)


def test_demo_users_get_one_role_each_and_passwords_that_work_printed_once(db):
    first = bootstrap("--demo-users")
    printed = dict(re.findall(r"^\s+(\w+)\s+(\S+)\s+\(", first, flags=re.M))
    assert set(printed) == {"pm", "scientist", "architect", "admin"}
    for username, password in printed.items():
        assert authenticate(username=username, password=password) is not None
    second = bootstrap("--demo-users")
    assert "shown this once" not in second and "already present: pm, scientist, architect, admin" in second
    assert not any(password in second for password in printed.values())
    assert get_user_model().objects.count() == 4
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and list(admin.groups.values_list("name", flat=True)) == ["Admin"]
