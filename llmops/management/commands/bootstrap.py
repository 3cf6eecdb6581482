from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from llmops.bootstrap import ensure_demo_users, ensure_roles


class Command(BaseCommand):
    help = "Create the role groups (idempotent); with --demo-users, one demo user per role (passwords printed once)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo-users", action="store_true", help="Also create a demo user for each role."
        )

    @transaction.atomic
    def handle(self, *args, demo_users: bool = False, **options):
        created = ensure_roles(Group)
        self.stdout.write(f"Roles: {', '.join(created) + ' created' if created else 'all present'}.")
        if not demo_users:
            return
        users = ensure_demo_users(get_user_model(), Group)
        new = [u for u in users if u.password]
        if new:
            self.stdout.write(self.style.WARNING("Demo users created; their passwords are shown this once:"))
            for u in new:
                self.stdout.write(f"  {u.username:<10} {u.password:<14} ({u.role})")
        old = [u.username for u in users if not u.password]
        if old:
            self.stdout.write(
                f"Demo users already present: {', '.join(old)} "
                "(forgot a password? `python manage.py changepassword NAME`)."
            )
