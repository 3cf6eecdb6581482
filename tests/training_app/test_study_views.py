"""The study pages: a data scientist starts a study from the form (mistakes shown by their fields), a PM may read
studies but not open the form, and the leaderboard ranks trials by validation loss with the best one marked and
every user-written text escaped."""

from django.urls import reverse

from tests.training_app.conftest import ready_version
from tests.training_app.test_study import SPACE, finish, make_study, trials
from training_app.models import FineTuneJob, Study


def test_a_pm_reads_studies_but_is_refused_the_form(world, scientist, base):
    pm = world.client("PM")
    assert pm.get(reverse("training:study-new")).status_code == 403
    assert pm.post(reverse("training:study-new"), {"name": "x"}).status_code == 403
    assert pm.get(reverse("training:studies")).status_code == 200
    listing = pm.get(reverse("training:list")).content.decode()
    assert reverse("training:studies") in listing


def test_the_form_shows_range_problems_by_the_ranges_field_and_starts_a_valid_study(world, scientist, base):
    version = ready_version(scientist)
    client = world.client("Data Scientist")
    assert 'name="search_space"' in client.get(reverse("training:study-new")).content.decode()
    form = {"name": "lr sweep", "base": base.pk, "dataset_version": version.pk, "method": "lora",
            "hyperparameters": '{"max_steps": 4, "eval_every": 2, "batch_size": 4, "max_seq_len": 128}',
            "search_space": '{"lr": {"type": "log_uniform", "low": -1, "high": 1}, "colour": {"type": "choice"}}',
            "coarse_trials": 2, "fine_trials": 1, "parallelism": 2, "seed": 0, "prune_startup_trials": 2}  # fmt: skip
    response = client.post(reverse("training:study-new"), form)
    page = response.content.decode()
    assert response.status_code == 400 and "lr: log_uniform needs a positive low" in page
    assert "colour: is not a known setting" in page and not Study.objects.exists()
    form["search_space"] = '{"lr": {"type": "log_uniform", "low": 0.0001, "high": 0.01}}'
    response = client.post(reverse("training:study-new"), form)
    study = Study.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "training:study", kwargs={"pk": study.pk}
    )
    assert study.trials.count() == 2 and study.created_by == scientist


def test_the_leaderboard_ranks_trials_marks_the_best_and_escapes_user_text(world, scientist, base):
    version = ready_version(scientist)
    study = make_study(
        scientist,
        base,
        version,
        name="<script>alert(1)</script>",
        coarse_trials=3,
        fine_trials=0,
        parallelism=3,
    )
    first, second, third = trials(study)
    finish(first, {2: 0.9, 4: 0.8})
    finish(second, {2: 0.5, 4: 0.4})
    FineTuneJob.objects.filter(pk=third.pk).update(pruned=True, status="cancelled")
    finish(third, {2: 3.0}, status="cancelled")
    study.refresh_from_db()
    assert study.status == "succeeded" and study.best_trial == second
    page = world.client("PM").get(reverse("training:study", kwargs={"pk": study.pk})).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f'data-best="{second.pk}"' in page and page.count("data-best=") == 1
    order = [
        page.index(f'href="{reverse("training:job", kwargs={"pk": j.pk})}"') for j in (second, first, third)
    ]
    assert order == sorted(order)  # 0.4, then 0.8, then the pruned trial
    assert ">pruned<" in page and all(name in page for name in SPACE)
    board = world.api("PM").get(reverse("api-study", kwargs={"pk": study.pk})).data["leaderboard"]
    assert [(r["job"], r["status"]) for r in board] == [(second.pk, "succeeded"), (first.pk, "succeeded"),
                                                        (third.pk, "pruned")]  # fmt: skip
    assert board[0]["is_best"] and board[0]["val_loss"] == 0.4
