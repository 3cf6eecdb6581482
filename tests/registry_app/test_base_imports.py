"""Registering a base model as a data scientist meets it: from a folder under the import roots, or from a hub id
(a real HTTP server on loopback plays the Hugging Face hub, serving the tiny model plus a pickled file and a code
file that must never be fetched); every problem of a bad request listed at once; an unreachable hub fails the job
with the reason and what to do instead; a PM may look but not register."""

import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.urls import reverse

from llmops.jobs import JobStatus
from registry_app.base_imports import base_import_run, base_import_submit
from registry_app.models import BaseImport, ModelVersion

REPO, COMMIT = "acme/tiny-chat", "c0ffee" * 6 + "c0ff"


@pytest.fixture(autouse=True)
def roots(settings, artifacts, tmp_path):
    settings.MODEL_IMPORT_ROOTS = [str(tmp_path / "models")]
    return tmp_path / "models"


def hub_handler(files: dict[str, bytes]):
    class Hub(BaseHTTPRequestHandler):
        """The three calls a snapshot download makes: repo info, the file tree, and each file (HEAD, then GET)."""

        def _reply(self, code: int, body: bytes, headers: dict) -> None:
            self.send_response(code)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):
            api = f"/api/models/{REPO}"
            if self.path.startswith(f"{api}/tree/"):
                tree = [{"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                        for n, d in files.items()]  # fmt: skip
                return self._reply(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
            if self.path.startswith(f"{api}/revision/"):
                info = {"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": n} for n in files]}
                return self._reply(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
            name = self.path.removeprefix(f"/{REPO}/resolve/{COMMIT}/")
            if name in files:
                etag = f'"{hashlib.sha256(files[name]).hexdigest()}"'
                return self._reply(200, files[name], {"X-Repo-Commit": COMMIT, "ETag": etag})
            self.server.missing.append(self.path)
            return self._reply(404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"})

        do_HEAD = do_GET

        def log_message(self, *args):  # keep the test output quiet
            pass

    return Hub


@pytest.fixture
def hub(settings, tiny_dir):
    files = {p.name: p.read_bytes() for p in tiny_dir.iterdir() if p.is_file()}
    files |= {"pytorch_model.bin": b"pickle", "modeling_evil.py": b"import os"}
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub_handler(files))
    server.missing = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.HF_ENDPOINT = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()


def run(job: BaseImport) -> BaseImport:
    base_import_run(job_id=job.pk, task_id=job.celery_task_id, hostname="test")
    job.refresh_from_db()
    return job


def test_a_hub_id_downloads_only_safe_files_and_registers_a_base(world, hub):
    user = world.users["Data Scientist"]
    job = run(base_import_submit(user=user, name="tiny-chat", task="causal_lm", source="hub", location=REPO))
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = job.result_version
    folder = Path(version.artifact_uri)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert (
        not list(folder.glob("*.bin")) and not list(folder.glob("*.py")) and not (folder / ".cache").exists()
    )
    assert (version.model.name, version.number, version.source) == ("tiny-chat", 1, "base")
    again = run(
        base_import_submit(user=user, name="tiny-chat", task="causal_lm", source="hub", location=REPO)
    )
    assert (
        again.result_version == version and ModelVersion.objects.count() == 1
    )  # same content: no new version


def test_an_unreachable_hub_fails_the_job_saying_what_to_do_instead(world, settings):
    settings.HF_ENDPOINT = "http://127.0.0.1:9"  # the discard port: nothing listens
    job = base_import_submit(
        user=world.users["Admin"], name="x", task="causal_lm", source="hub", location="a/b"
    )
    job = run(job)
    assert job.status == JobStatus.FAILED and "could not download a/b from http://127.0.0.1:9" in job.error
    assert "register its folder instead" in job.error and not ModelVersion.objects.exists()


def test_a_folder_under_the_roots_registers_through_the_form(world, roots, tiny_dir):
    folder = shutil.copytree(tiny_dir, roots / "tiny")
    client = world.client("Data Scientist")
    data = {"name": "tiny", "task": "causal_lm", "source": "folder", "location": str(folder)}
    response = client.post(reverse("registry:import"), data)
    assert response.status_code == 302 and response["Location"] == reverse("registry:list")
    job = run(BaseImport.objects.get())
    assert job.status == JobStatus.SUCCEEDED and job.result_version.artifact_uri == str(folder)
    page = client.get(reverse("registry:list")).content.decode()
    assert f'data-import="{job.pk}"' in page and reverse("registry:version", args=["tiny", 1]) in page


def test_every_problem_is_named_at_once_and_nothing_is_queued(world, roots, tmp_path, tiny_dir):
    outside = shutil.copytree(tiny_dir, tmp_path / "elsewhere")
    client = world.client("Data Scientist")
    bad = {"name": " ", "task": "causal_lm", "source": "folder", "location": str(outside)}
    page = client.post(reverse("registry:import"), bad)
    assert page.status_code == 400
    assert "must lie under" in page.content.decode() and "is required" in page.content.decode()
    api = world.api("Data Scientist")
    body = {"name": "x", "task": "causal_lm", "source": "hub", "location": "not a hub id", "revision": "a b"}
    fields = api.post(reverse("api-base-imports"), body, format="json").json()["error"]["fields"]
    assert set(fields) == {"location", "revision"}
    (roots / "pickled").mkdir(parents=True)
    (roots / "pickled" / "config.json").write_text("{}")
    (roots / "pickled" / "pytorch_model.bin").write_bytes(b"x")
    body = {"name": "x", "source": "folder", "location": str(roots / "pickled")}
    problems = api.post(reverse("api-base-imports"), body, format="json").json()["error"]["fields"][
        "location"
    ]
    assert any("no .safetensors" in p for p in problems) and any("pickled" in p for p in problems)
    assert not BaseImport.objects.exists()


def test_a_pm_sees_the_models_but_cannot_register(world):
    client = world.client("PM")
    assert 'id="register-base"' not in client.get(reverse("registry:list")).content.decode()
    assert client.get(reverse("registry:import")).status_code == 403
    response = world.api("PM").post(
        reverse("api-base-imports"), {"name": "x", "source": "hub", "location": "a/b"}
    )
    assert response.status_code == 403
