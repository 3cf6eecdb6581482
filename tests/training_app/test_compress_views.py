"""The compression pages as people meet them: a form per method with only that method's settings, every refusal
(a form's range, the service's hardware and shape checks) beside its field with nothing saved, a valid submit
queued, the roles, the result page's benchmark table with the numbers written by a run, and a family's versions
with one point per version on the quality-versus-latency chart. Rows are written with the ORM (no worker)."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from datasets_app.models import Dataset, DatasetVersion
from evaluation_app.models import ComparisonReport, EvalResult, EvalRun
from llmops.jobs import JobStatus
from registry_app.models import ModelVersion, RegisteredModel
from training_app.models import CompressionJob, VersionBenchmark

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 768}  # fmt: skip


def model_folder(root, name: str, **config):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**LLAMA, **config}))
    return folder


def version_of(model: RegisteredModel, number: int, folder, **fields) -> ModelVersion:
    return ModelVersion.objects.create(model=model, number=number, source=fields.pop("source", "base"),
                                       artifact_uri=str(folder), sha256=f"{number}" * 64, **fields)  # fmt: skip


@pytest.fixture
def base(tmp_path) -> ModelVersion:
    model = RegisteredModel.objects.create(name="tiny", task="causal_lm")
    return version_of(model, 1, model_folder(tmp_path, "tiny"))


@pytest.fixture
def narrow(tmp_path) -> ModelVersion:
    """A model 30 wide: 2:4 pruning cannot split its rows into groups of 4."""
    model = RegisteredModel.objects.create(name="narrow", task="causal_lm")
    folder = model_folder(tmp_path, "narrow", hidden_size=30, num_attention_heads=3, num_key_value_heads=3,
                          intermediate_size=60)  # fmt: skip
    return version_of(model, 1, folder)


def chat_version(tmp_path, name: str = "support") -> DatasetVersion:
    export = tmp_path / f"export-{name}"
    export.mkdir()
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    (export / "train.jsonl").write_text(json.dumps(row) + "\n")
    dataset = Dataset.objects.create(name=name, task_type="chat")
    return DatasetVersion.objects.create(
        dataset=dataset, number=1, recipe={}, status="ready", counts={"train": 10, "validation": 0, "test": 4},
        exports={"jsonl": {"path": str(export)}},
    )  # fmt: skip


@pytest.fixture
def version(tmp_path) -> DatasetVersion:
    return chat_version(tmp_path)


def field_block(html: str, name: str) -> str:
    return html.split(f'data-field="{name}"', 1)[1].split('<div class="recipe-field"', 1)[0]


def new_url(method: str) -> str:
    return reverse("training:compression-new", args=[method])


def run_on(model_version, dataset_version, score: float, predictions: list[str]) -> EvalRun:
    run = EvalRun.objects.create(model_version=model_version, dataset_version=dataset_version, suites=["task"],
                                 status=JobStatus.SUCCEEDED, progress=1.0, finished_at=timezone.now(),
                                 metrics={"task": {"mean_score": score, "accuracy": 0.0}})  # fmt: skip
    EvalResult.objects.bulk_create(
        EvalResult(run=run, position=i, key=f"k{i}", prompt=[], prediction=p)
        for i, p in enumerate(predictions)
    )
    return run


def bench(version, job, role: str, size: int, p50_b8: float, **fields) -> VersionBenchmark:
    values = {"parameters": 1000, "peak_memory_bytes": 300_000_000, "p50_b1_ms": p50_b8 / 4, "p95_b1_ms": p50_b8 / 3,
              "p95_b8_ms": p50_b8 * 1.2, "throughput": 8000 / p50_b8, "hostname": "gpu-1", **fields}  # fmt: skip
    return VersionBenchmark.objects.create(version=version, job=job, role=role, size_bytes=size, p50_b8_ms=p50_b8,
                                           **values)  # fmt: skip


def finished_job(base, dataset_version, method="int8_dynamic", then_int8=False, number=2, **result):
    """A succeeded compression with its result version, both benchmarks, both evaluation runs and their report."""
    out = version_of(base.model, number, base.artifact_uri, source="compression", format="quantized", base=base,
                     lineage={"method": method, "config": {"then_int8": then_int8}})  # fmt: skip
    job = CompressionJob.objects.create(
        source=base, method=method, config={"method": method, "then_int8": then_int8}, status=JobStatus.SUCCEEDED,
        progress=1.0, eval_dataset_version=dataset_version, result_version=out, finished_at=timezone.now(),
        result={"format": "quantized", "parameters_before": 1000, "parameters_after": 1000, "size_before": 4_000_000,
                "size_after": 1_000_000, "train_losses": [], **result},
    )  # fmt: skip
    out.lineage = {**out.lineage, "compression_job": job.pk}
    out.save(update_fields=["lineage"])
    bench(base, job, "source", 4_000_000, 40.0)
    bench(out, job, "compressed", 1_000_000, 20.0)
    baseline = run_on(base, dataset_version, 0.8, ["a", "b", "c", "d"])
    candidate = run_on(out, dataset_version, 0.75, ["a", "b", "c", "x"])
    job.comparison = ComparisonReport.objects.create(baseline=baseline, candidate=candidate)
    job.save(update_fields=["comparison"])
    return job


def test_each_method_form_shows_only_the_settings_that_method_takes(world):
    client = world.client("Data Scientist")
    expected = {
        "int8_dynamic": ({"source", "eval_dataset_version", "eval_split", "activation_scales"},
                         {"backend", "sparsity", "steps"}),
        "int4_weight_only": ({"backend", "group_size"}, {"sparsity", "steps", "alpha"}),
        "prune_magnitude": ({"sparsity", "then_int8", "steps", "learning_rate", "dataset_version",
                             "recovery_teacher", "alpha", "temperature"}, {"backend", "student"}),
        "prune_2_4": ({"then_int8", "steps", "dataset_version", "recovery_teacher"}, {"sparsity", "backend"}),
        "distill": ({"student", "student_layers", "student_hidden_size", "alpha", "temperature", "steps"},
                    {"sparsity", "backend", "group_size", "recovery_teacher"}),
    }  # fmt: skip
    for method, (shown, hidden) in expected.items():
        html = client.get(new_url(method)).content.decode()
        for name in shown:
            assert f'name="{name}"' in html, (method, name)
        for name in hidden:
            assert f'name="{name}"' not in html, (method, name)
    assert client.get(new_url("zip_it")).status_code == 404


def test_a_sparsity_outside_zero_to_one_is_a_field_error_and_nothing_is_saved(world, base, version):
    data = {"source": base.pk, "eval_split": "test", "sparsity": 1.5, "steps": 0, "learning_rate": 5e-5}
    response = world.client("Data Scientist").post(new_url("prune_magnitude"), data)
    assert response.status_code == 400
    assert "strictly between 0 and 1" in field_block(response.content.decode(), "sparsity")
    assert not CompressionJob.objects.exists()


def test_a_temperature_of_zero_is_a_field_error(world, base, version):
    data = {"source": base.pk, "eval_split": "test", "student_layers": 1, "alpha": 0.5, "temperature": 0,
            "steps": 5, "learning_rate": 5e-5, "dataset_version": version.pk}  # fmt: skip
    response = world.client("Data Scientist").post(new_url("distill"), data)
    assert response.status_code == 400
    assert "must be above 0" in field_block(response.content.decode(), "temperature")
    assert not CompressionJob.objects.exists()


def test_int4_on_cpu_workers_is_refused_with_the_services_reason(world, base, settings):
    settings.GPU_WORKERS_CUDA = False
    settings.GPU_WORKERS_INT4_CPU_KERNEL = False
    data = {"source": base.pk, "eval_split": "test", "backend": "torchao", "group_size": 32}
    response = world.client("Data Scientist").post(new_url("int4_weight_only"), data)
    assert response.status_code == 400
    assert "needs a CUDA GPU" in field_block(response.content.decode(), "method")
    assert not CompressionJob.objects.exists()


def test_2_4_pruning_of_a_model_30_wide_is_refused_naming_the_width(world, narrow):
    data = {"source": narrow.pk, "eval_split": "test", "steps": 0, "learning_rate": 5e-5}
    response = world.client("Data Scientist").post(new_url("prune_2_4"), data)
    assert response.status_code == 400
    assert "hidden_size is 30" in field_block(response.content.decode(), "method")
    assert not CompressionJob.objects.exists()


def test_recovery_steps_without_a_training_set_are_refused_beside_the_dataset_field(world, base):
    data = {"source": base.pk, "eval_split": "test", "sparsity": 0.5, "steps": 10, "learning_rate": 5e-5}
    response = world.client("Data Scientist").post(new_url("prune_mlp"), data)
    assert response.status_code == 400
    assert "dataset version is needed" in field_block(response.content.decode(), "dataset_version")


def test_the_source_teaching_a_recovery_without_steps_is_refused_beside_its_field(world, base):
    data = {"source": base.pk, "eval_split": "test", "sparsity": 0.5, "steps": 0, "learning_rate": 5e-5,
            "recovery_teacher": "on"}  # fmt: skip
    response = world.client("Data Scientist").post(new_url("prune_mlp"), data)
    assert response.status_code == 400
    assert "applies to pruning with recovery steps" in field_block(
        response.content.decode(), "recovery_teacher"
    )
    assert not CompressionJob.objects.exists()


def test_a_valid_int8_submit_queues_a_job_and_opens_its_page(world, base, version, broker):
    data = {"source": base.pk, "eval_dataset_version": version.pk, "eval_split": "test"}
    response = world.client("Data Scientist").post(new_url("int8_dynamic"), data)
    job = CompressionJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "training:compression", args=[job.pk]
    )
    assert job.status == JobStatus.QUEUED and job.method == "int8_dynamic" and job.config["device"] == "cpu"
    assert job.eval_dataset_version == version and job.source == base
    assert job.config["activation_scales"] == "tensor"  # the field left empty: the engine's default


def test_per_token_activation_scales_reach_the_jobs_config(world, base, version, broker):
    data = {"source": base.pk, "eval_split": "test", "activation_scales": "token"}
    world.client("Data Scientist").post(new_url("int8_dynamic"), data)
    assert CompressionJob.objects.get().config["activation_scales"] == "token"


def test_a_pm_reads_the_pages_but_cannot_submit_or_cancel(world, base, version):
    job = CompressionJob.objects.create(source=base, method="int8_dynamic", config={})
    pm = world.client("PM")
    html = pm.get(reverse("training:compressions")).content.decode()
    assert f'href="{reverse("training:compression", args=[job.pk])}"' in html
    assert new_url("int8_dynamic") not in html
    assert pm.get(reverse("training:compression", args=[job.pk])).status_code == 200
    assert pm.get(new_url("int8_dynamic")).status_code == 403
    assert pm.post(new_url("int8_dynamic"), {"source": base.pk}).status_code == 403
    assert pm.post(reverse("training:compression-cancel", args=[job.pk])).status_code == 403
    assert not CompressionJob.objects.exclude(pk=job.pk).exists()
    assert (
        new_url("prune_2_4")
        in world.client("Data Scientist").get(reverse("training:compressions")).content.decode()
    )


def test_the_result_page_shows_the_benchmark_table_ratios_and_quality(world, base, version):
    job = finished_job(base, version, train_losses=[[1, 2.0], [2, 1.5], [3, 1.2]])
    html = world.client("Architect").get(reverse("training:compression", args=[job.pk])).content.decode()
    table = html.split('id="benchmark-table"', 1)[1].split("</table>", 1)[0]
    source = table.split('data-role="source"', 1)[1].split("</tr>", 1)[0]
    result = table.split('data-role="compressed"', 1)[1].split("</tr>", 1)[0]
    assert 'data-size-bytes="4000000"' in source and "40.00 / 48.00" in source and "0.800" in source
    assert 'data-size-bytes="1000000"' in result and "20.00 / 24.00" in result and "0.750" in result
    assert "INT8 dynamic (CPU)" in result
    ratios = html.split('id="ratios"', 1)[1].split("</dl>", 1)[0]
    assert "0.250×" in ratios and "2.00×" in ratios and "-0.050" in ratios and "75 % of 4" in ratios
    assert reverse("evaluation:report", args=[job.comparison_id]) in html
    assert reverse("evaluation:run", args=[job.comparison.candidate_id]) in html
    assert reverse("registry:version", args=["tiny", 2]) in html
    assert reverse("training:compression-family", args=[base.model_id]) in html
    assert 'class="curve"' in html.split('id="loss-curve"', 1)[1]
    assert "hx-trigger" not in html.split('id="compression-live"', 1)[1].split(">", 1)[0]


def test_a_running_job_is_polled_and_the_poll_returns_only_the_live_part(world, base):
    job = CompressionJob.objects.create(source=base, method="prune_magnitude", config={"sparsity": 0.5},
                                        status=JobStatus.RUNNING, progress=0.4, progress_message="step 4/10")  # fmt: skip
    client = world.client("Data Scientist")
    url = reverse("training:compression", args=[job.pk])
    html = client.get(url).content.decode()
    assert f'hx-get="{url}" hx-trigger="every 3s"' in html and "Cancel job" in html
    part = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="compression-live").content.decode()
    assert part.lstrip().startswith('<div id="compression-live"') and "step 4/10" in part
    assert 'id="settings"' not in part


def test_polling_goes_on_after_success_until_the_evaluation_is_queued(world, base, version):
    job = CompressionJob.objects.create(source=base, method="int8_dynamic", config={}, status=JobStatus.SUCCEEDED,
                                        eval_dataset_version=version, finished_at=timezone.now())  # fmt: skip
    url = reverse("training:compression", args=[job.pk])
    assert "hx-trigger" in world.client("PM").get(url).content.decode()
    CompressionJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(hours=1))
    assert "hx-trigger" not in world.client("PM").get(url).content.decode()


def test_cancel_from_the_page_cancels_a_queued_job(world, base):
    job = CompressionJob.objects.create(source=base, method="int8_dynamic", config={})
    response = world.client("Data Scientist").post(reverse("training:compression-cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED or job.cancel_requested


def test_the_list_shows_method_label_size_ratio_and_speedup(world, base, version):
    job = finished_job(base, version)
    html = world.client("PM").get(reverse("training:compressions")).content.decode()
    row = html.split(f'data-job="{job.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "INT8 dynamic (CPU)" in row and "0.25×" in row and "2.00×" in row and "tiny v2" in row


def test_the_family_page_lists_benchmarked_versions_and_draws_one_point_each(world, base, version, tmp_path):
    finished_job(base, version, number=2)
    finished_job(base, version, method="prune_magnitude", then_int8=True, number=3)
    other = chat_version(tmp_path, "other")
    run_on(base, other, 0.3, ["a"])  # a dataset version no job chose: not the default
    url = reverse("training:compression-family", args=[base.model_id])
    html = world.client("PM").get(url).content.decode()
    table = html.split('id="family"', 1)[1].split("</table>", 1)[0]
    labels = [part.split("</td>", 1)[0] for part in table.split("<td data-label>")[1:]]
    assert labels == ["original", "INT8", "pruned + INT8"]
    assert table.count("0.050") == 2  # each compressed version lost 0.8 - 0.75 against the original
    chart = html.split('id="quality-latency"', 1)[1]
    assert chart.count('class="point"') == 3
    assert 'data-label="v1 original"' in chart and 'data-label="v3 pruned + INT8"' in chart
    assert f'<option value="{version.pk}" selected>' in html
    # on the other dataset version only the original has a quality: one point, the others listed as not drawn
    html = world.client("PM").get(url, {"dataset_version": other.pk}).content.decode()
    assert html.split('id="quality-latency"', 1)[1].count('class="point"') == 1 and "Not drawn" in html


def test_user_text_in_a_family_name_is_escaped_on_the_family_page(world, tmp_path, version):
    model = RegisteredModel.objects.create(name="<script>x</script>", task="causal_lm")
    finished_job(version_of(model, 1, model_folder(tmp_path, "evil")), version)
    html = world.client("PM").get(reverse("training:compression-family", args=[model.pk])).content.decode()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_the_settings_table_leaves_out_empty_values_and_other_methods_settings(world, base):
    config = {"method": "int8_dynamic", "device": "cpu", "alpha": 0.5, "sparsity": 0.5, "labels": None}
    job = CompressionJob.objects.create(source=base, method="int8_dynamic", config=config)
    html = world.client("PM").get(reverse("training:compression", args=[job.pk])).content.decode()
    settings = html.split('id="settings"', 1)[1]
    assert "<th>device</th>" in settings and "<th>method</th>" in settings
    assert (
        "<th>alpha</th>" not in settings
        and "<th>sparsity</th>" not in settings
        and "<th>labels</th>" not in settings
    )
