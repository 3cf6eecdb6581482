"""One small fixture world shared by the suite: a user per role, their API tokens, a real Celery worker on demand."""

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from rest_framework.test import APIClient

from llmops.bootstrap import ensure_roles
from llmops.roles import ADMIN, ARCHITECT, DATA_SCIENTIST, PM, ROLES

ROOT = Path(__file__).resolve().parent.parent
USERNAMES = {PM: "pm", DATA_SCIENTIST: "scientist", ARCHITECT: "architect", ADMIN: "admin"}
PASSWORD = "correct horse battery staple"


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll with a deadline (never sleep for timing); returns the predicate's first truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class World:
    users: dict
    tokens: dict  # role -> raw token

    def client(self, role: str | None):
        client = APIClient()
        if role:
            client.force_login(self.users[role])
        return client

    def api(self, role: str | None):
        client = APIClient()
        if role:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[role]}")
        return client


@pytest.fixture
def world(db) -> World:
    from llmops.services import api_token_create

    ensure_roles(Group)
    users, tokens = {}, {}
    for role in ROLES:
        user = get_user_model().objects.create_user(
            USERNAMES[role], password=PASSWORD, is_staff=role == ADMIN
        )
        user.groups.add(Group.objects.get(name=role))
        users[role] = user
        tokens[role] = api_token_create(user=user, name="tests")[1]
    return World(users, tokens)


@pytest.fixture
def broker() -> redis.Redis:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    return client


def database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class WorkerProcess:
    """A real `celery worker` process on the test database and broker."""

    def __init__(self, log_path: Path, queues: str = "cpu,gpu", concurrency: int = 1, **env_overrides):
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        env = dict(
            os.environ,
            DATABASE_URL=database_url(),
            REDIS_URL=settings.REDIS_URL,
            LOG_FORMAT="json",
            JOB_HEARTBEAT_SECONDS="0.3",
            JOB_STALE_AFTER_SECONDS="3",
            DB_CONN_MAX_AGE="0",
            PYTHONUNBUFFERED="1",
            # a fine-tune's automatic evaluation is tested on its own (tests/evaluation_app/test_auto.py);
            # elsewhere it would only keep the worker busy after the job under test has ended
            EVAL_AUTO_SPLIT="",
            **{k: str(v) for k, v in env_overrides.items()},
        )
        self.log_path = log_path
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "llmops",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            self.name,
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ]
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self._ready, timeout=60, interval=0.2, what=f"worker {self.name} to answer a ping")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
        from llmops.celery import app

        return bool(app.control.ping(destination=[self.name], timeout=0.5))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): a node that vanished."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker(transactional_db, broker, tmp_path):
    workers: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        worker = WorkerProcess(tmp_path / f"worker-{len(workers)}.log", **kwargs)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness is for production; tests only need a hasher that works."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """The tiny offline model, built once for the whole run; tests only read it (copy it to change it)."""
    from workers.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


TINY_BERT_LABELS = ["billing", "shipping", "returns"]


@pytest.fixture(scope="session")
def tiny_bert_dir(tiny_dir, tmp_path_factory) -> Path:
    """A random MiniLM-shaped classifier (BertForSequenceClassification over the tiny tokenizer; hidden 64,
    4 heads of 16, 2 layers, MLP 128, labels TINY_BERT_LABELS), built once; tests only read it."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=256, pad_token_id=pad,
        num_labels=len(TINY_BERT_LABELS), id2label=dict(enumerate(TINY_BERT_LABELS)),
        label2id={name: i for i, name in enumerate(TINY_BERT_LABELS)},
    )  # fmt: skip
    out = tmp_path_factory.mktemp("tiny-bert") / "model"
    BertForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def artifacts(settings, tmp_path) -> Path:
    """ARTIFACT_ROOT under the test's own tmp folder; heartbeats rare enough that an in-process job is never
    taken for a lost one."""
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.JOB_HEARTBEAT_SECONDS = 600
    return settings.ARTIFACT_ROOT


@pytest.fixture
def scientist(world):
    return world.users[DATA_SCIENTIST]


@pytest.fixture
def base(scientist, tiny_dir):
    """The tiny model registered as a base version ("tiny" v1)."""
    from registry_app.services import base_model_register

    return base_model_register(user=scientist, name="tiny", path=tiny_dir, task="causal_lm")
