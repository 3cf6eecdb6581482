from django.core.management.base import BaseCommand

from demo_app.seed import demo_seed


class Command(BaseCommand):
    help = (
        "Seed the Aurora Home demo workspace once: demo users, ~300 error cases (zh/en) and the general intents "
        "pack with a ready version. Idempotent: what exists is kept and a second run creates nothing."
    )

    def handle(self, *args, **options):
        demo_seed(stdout=self.stdout)
