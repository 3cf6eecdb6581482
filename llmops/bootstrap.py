"""Roles (groups) and demo users. Used by the `bootstrap` command and by the roles data migration."""

import secrets
from dataclasses import dataclass

from llmops.roles import ADMIN, ARCHITECT, DATA_SCIENTIST, PM, ROLES

DEMO_USERS = {"pm": PM, "scientist": DATA_SCIENTIST, "architect": ARCHITECT, "admin": ADMIN}


def ensure_roles(group_model) -> list[str]:
    """Create the role groups that are missing; returns the names created."""
    return [name for name in ROLES if group_model.objects.get_or_create(name=name)[1]]


@dataclass
class DemoUser:
    username: str
    role: str
    password: str | None  # set only when the user was created just now


def ensure_demo_users(user_model, group_model) -> list[DemoUser]:
    """One user per role; a new user gets a random password, returned once and never stored in clear."""
    ensure_roles(group_model)
    result = []
    for username, role in DEMO_USERS.items():
        user = user_model.objects.filter(username=username).first()
        password = None
        if user is None:
            password = secrets.token_urlsafe(9)
            user = user_model.objects.create_user(
                username=username, password=password, is_staff=role == ADMIN, is_superuser=role == ADMIN
            )
        user.groups.add(group_model.objects.get(name=role))
        result.append(DemoUser(username, role, password))
    return result
