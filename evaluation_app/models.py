"""Evaluation runs and comparison reports: EvalRun, EvalResult, ComparisonReport, ComparisonItem.

An EvalRun scores one target — a model version, optionally with a prompt template (system prompt, few-shot turns) —
on one example set: a dataset version's split, or a product's regression suite (its approved error cases). Every
example gets an EvalResult keyed by ``key`` (the example's content hash), so two runs over the same examples can be
paired one to one. A ComparisonReport pairs a candidate run with a baseline run; it waits until both have succeeded,
then computes its summary and one ComparisonItem per example (for filters: win/loss/tie, fixed/newly broken).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from llmops.jobs import Job


class Suite(models.TextChoices):
    TASK = "task", "task metrics (classification or generation, by the model's task)"
    RULES = "rules", "code-based rules"
    JUDGE = "judge", "LLM-as-judge (rubrics)"
    PAIRWISE = "pairwise", "LLM-as-judge, pairwise against the reference"
    RAG = "rag", "RAG: faithfulness, relevance, retrieval recall/precision"
    ROBUSTNESS = "robustness", "robustness: the same examples with typos"
    EFFICIENCY = "efficiency", "efficiency and resources"
    SALIENCY = "saliency", "per-token saliency (classifiers)"


class Lang(models.TextChoices):
    AUTO = "auto", "detect from the references"
    EN = "en", "English (and other space-separated languages)"
    ZH = "zh", "Chinese, by character"
    ZH_JIEBA = "zh-jieba", "Chinese, by jieba words"


class Trigger(models.TextChoices):
    MANUAL = "manual"
    AUTO = "auto", "after a fine-tune"


class Pack(models.TextChoices):
    TASK = "task", "the run's examples"
    GENERAL = "general", "general-capability pack (forgetting check)"


class EvalRun(Job):
    """One evaluation of a target on an example set; generation-heavy, so on the gpu queue."""

    TASK = "evaluation.run"
    QUEUE = "gpu"

    name = models.CharField(max_length=200, blank=True)
    model_version = models.ForeignKey(
        "registry_app.ModelVersion", on_delete=models.PROTECT, related_name="eval_runs"
    )
    system_prompt = models.TextField(blank=True, help_text="Replaces the examples' own system message.")
    few_shot = models.JSONField(
        default=list, blank=True, help_text='[{"user": ..., "assistant": ...}] put before each example.'
    )
    dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="eval_runs",
    )
    split = models.CharField(max_length=10, default="test")
    product = models.CharField(
        max_length=100, blank=True, help_text="Without a dataset version: this product's regression suite."
    )
    suites = models.JSONField(default=list, help_text="Suite names (evaluation_app.models.Suite).")
    rules = models.JSONField(default=list, blank=True, help_text="Validated rules (workers.evaluate.rules).")
    judge = models.JSONField(
        default=dict,
        blank=True,
        help_text="{base_url, model, rubrics, timeout_s, prices}; api key by env name.",
    )
    generation = models.JSONField(default=dict, blank=True, help_text="workers.generate.GenerateConfig.")
    general_pack = models.BooleanField(
        default=True, help_text="Also score the general-capability pack (the forgetting check)."
    )
    pass_threshold = models.FloatField(
        default=0.5, help_text="A generated answer counts as correct at this primary score (0..1) or above."
    )
    limit = models.PositiveIntegerField(null=True, blank=True, help_text="Score only the first N examples.")
    lang = models.CharField(
        max_length=8,
        choices=Lang.choices,
        default=Lang.AUTO,
        help_text="How BLEU and ROUGE tokenise the text.",
    )
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.MANUAL)
    source_job = models.ForeignKey(
        "training_app.FineTuneJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="eval_runs"
    )
    example_count = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True, help_text="Summary per suite and per pack.")
    leakage = models.JSONField(
        default=dict, blank=True, help_text="Test examples found in the model's training data."
    )

    class Meta(Job.Meta):
        verbose_name = "evaluation run"

    def __str__(self) -> str:
        return f"evaluation #{self.pk} of {self.model_version}"

    @property
    def source_label(self) -> str:
        if self.dataset_version_id:
            return f"{self.dataset_version} ({self.split})"
        return f"regression suite of {self.product or 'every product'}"

    @property
    def has_template(self) -> bool:
        return bool(self.system_prompt or self.few_shot)

    @property
    def leaked(self) -> int:
        return int((self.leakage or {}).get("exact", 0)) + int((self.leakage or {}).get("near", 0))


class EvalResult(models.Model):
    """One example of one run: what the model said, how it scored, what it cost."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    pack = models.CharField(max_length=8, choices=Pack.choices, default=Pack.TASK)
    position = models.PositiveIntegerField()
    key = models.CharField(max_length=64, help_text="The example's content hash: pairs results across runs.")
    example = models.ForeignKey(
        "datasets_app.DatasetExample", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    case = models.ForeignKey(
        "datasets_app.ErrorCase",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="eval_results",
    )
    category = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=list, blank=True)
    prompt = models.JSONField(
        help_text="The messages the model saw (template applied), or the text classified."
    )
    reference = models.TextField(blank=True)
    prediction = models.TextField(blank=True)
    noisy_prediction = models.TextField(blank=True, help_text="The answer to the noised prompt (robustness).")
    score = models.FloatField(null=True, blank=True, help_text="The primary per-example score, 0..1.")
    noisy_score = models.FloatField(null=True, blank=True)
    correct = models.BooleanField(null=True)
    scores = models.JSONField(default=dict, blank=True, help_text="Every per-example metric by name.")
    rules = models.JSONField(default=list, blank=True)
    judge = models.JSONField(default=dict, blank=True, help_text="rubric -> {score, reason, error, cost}")
    judge_error = models.BooleanField(default=False)
    probs = models.JSONField(default=dict, blank=True)
    saliency = models.JSONField(default=list, blank=True, help_text="[[token, score], ...]")
    latency_ms = models.FloatField(default=0.0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    new_tokens = models.PositiveIntegerField(default=0)
    leaked = models.CharField(max_length=8, blank=True, help_text="exact | near: seen in training.")
    human_label = models.CharField(
        max_length=4, blank=True, help_text="good | bad: a person's judgement of the prediction."
    )
    human_labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["run", "pack", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "pack", "key"], name="eval_result_one_per_example")
        ]
        indexes = [models.Index(fields=["case", "run"], name="eval_result_case_run")]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.pack}#{self.position}"


class ReportStatus(models.TextChoices):
    WAITING = "waiting", "waiting for its runs"
    READY = "ready"
    REFUSED = "refused", "refused (the runs cannot be compared)"
    FAILED = "failed", "a run failed"


class Outcome(models.TextChoices):
    WIN = "win"
    LOSS = "loss"
    TIE = "tie"


class CaseOutcome(models.TextChoices):
    FIXED = "fixed"
    STILL_WRONG = "still_wrong", "still wrong"
    NEWLY_BROKEN = "newly_broken", "newly broken"
    STILL_RIGHT = "still_right", "still right"


class ComparisonReport(models.Model):
    """Candidate vs baseline on the very same examples."""

    name = models.CharField(max_length=200, blank=True)
    baseline = models.ForeignKey(EvalRun, on_delete=models.PROTECT, related_name="as_baseline")
    candidate = models.ForeignKey(EvalRun, on_delete=models.PROTECT, related_name="as_candidate")
    status = models.CharField(max_length=8, choices=ReportStatus.choices, default=ReportStatus.WAITING)
    reason = models.TextField(blank=True, help_text="Why it was refused or failed.")
    forgetting_threshold = models.FloatField(
        default=0.05, help_text="A general-pack score drop beyond this (0..1) is flagged."
    )
    summary = models.JSONField(default=dict, blank=True)
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.MANUAL)
    source_job = models.ForeignKey(
        "training_app.FineTuneJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"report #{self.pk}: {self.candidate.model_version} vs {self.baseline.model_version}"

    @property
    def untrustworthy(self) -> bool:
        return bool((self.summary or {}).get("leakage", {}).get("count"))

    @property
    def forgetting_flagged(self) -> bool:
        return bool((self.summary or {}).get("forgetting", {}).get("flagged"))


class ComparisonItem(models.Model):
    """One example of a report: both results side by side and how the candidate did against the baseline."""

    report = models.ForeignKey(ComparisonReport, on_delete=models.CASCADE, related_name="items")
    pack = models.CharField(max_length=8, choices=Pack.choices, default=Pack.TASK)
    key = models.CharField(max_length=64)
    baseline = models.ForeignKey(EvalResult, on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey(EvalResult, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=4, choices=Outcome.choices)
    case_outcome = models.CharField(max_length=12, choices=CaseOutcome.choices, blank=True)
    delta = models.FloatField(default=0.0)
    category = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["report", "pack", "baseline__position"]
        indexes = [
            models.Index(fields=["report", "outcome"], name="cmp_item_outcome"),
            models.Index(fields=["report", "case_outcome"], name="cmp_item_case_outcome"),
        ]

    def __str__(self) -> str:
        return f"{self.report_id}/{self.key[:8]}: {self.outcome}"
