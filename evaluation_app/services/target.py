"""The model side of a run, on the worker: load a model version once, then predict, score references, explain.

A version is loaded from its folder; a PEFT adapter uses the merged copy its fine-tune wrote next to it when it
is still there, else the adapter over its base's folder. Generative models answer through ``workers.generate``
(length-sorted dynamic batches with a KV cache), classifiers through ``workers.classify``.
"""

from dataclasses import dataclass
from pathlib import Path

from evaluation_app.models import EvalRun
from evaluation_app.services.examples import EvalExample, apply_template
from llmops.jobs import JobFailed
from registry_app.models import ModelTask, ModelVersion, VersionFormat


@dataclass
class Prediction:
    text: str
    latency_s: float
    prompt_tokens: int = 0
    new_tokens: int = 0
    probs: dict | None = None


def storable(text: str) -> str:
    """PostgreSQL text and JSON cannot hold NUL; a model (or a judge) can say it."""
    return text.replace("\x00", "\ufffd")


def model_paths(version: ModelVersion) -> tuple[str, str | None]:
    """(folder to load, base folder for an adapter or None)."""
    if version.format != VersionFormat.PEFT_ADAPTER:
        return version.artifact_uri, None
    merged = (version.lineage or {}).get("merged_model")
    if merged and Path(merged, "config.json").is_file():
        return merged, None
    if version.base is None:
        raise JobFailed(f"{version} is an adapter without a base version on record")
    return version.artifact_uri, version.base.artifact_uri


def _load(version: ModelVersion, path: str, base: str | None, classifier: bool):
    if (
        version.format == VersionFormat.QUANTIZED
    ):  # rebuilt with its quantised modules by the compression engine
        from workers.compress import load_model

        return load_model(path, "classification" if classifier else "causal_lm")
    if classifier:
        from workers.classify import load_classifier

        return load_classifier(path, base_dir=base)
    from workers.generate import load_causal

    return load_causal(path, base_dir=base)


class Target:
    """A loaded model version plus the run's prompt template and generation settings."""

    def __init__(self, run: EvalRun):
        self.run, self.version = run, run.model_version
        self.classifier = self.version.model.task == ModelTask.CLASSIFICATION
        path, base = model_paths(self.version)
        self.path = path
        try:
            if not self.classifier:
                from workers.generate import GenerateConfig

                self.config = GenerateConfig.from_dict(run.generation or {})
                self.config.validate()
            self.model, self.tokenizer = _load(self.version, path, base, self.classifier)
        except (RuntimeError, ValueError, OSError) as e:
            raise JobFailed(f"{self.version} could not be loaded from {path}: {e}") from e

    def messages(self, example: EvalExample) -> list[dict]:
        return apply_template(
            example.messages, system_prompt=self.run.system_prompt, few_shot=self.run.few_shot
        )

    def predict(self, examples: list[EvalExample], progress) -> list[Prediction]:
        """One prediction per example, in order. ``progress(done, total)`` may answer "stop"."""
        if self.classifier:
            from workers.classify import classify

            out = classify(self.model, self.tokenizer, [e.text for e in examples], progress=progress)
            return [Prediction(c.label, c.latency_s, c.tokens, 0, c.probs) for c in out]
        from workers.generate import generate, prompt_ids

        prompts = [prompt_ids(self.tokenizer, self.messages(e)) for e in examples]
        out = generate(self.model, self.tokenizer, prompts, self.config, progress=progress)
        return [Prediction(storable(g.text), g.latency_s, g.prompt_tokens, g.new_tokens) for g in out]

    def reference_nll(self, examples: list[EvalExample]) -> list[tuple[float, int]]:
        from workers.generate import prompt_ids, reference_nll

        prompts = [prompt_ids(self.tokenizer, self.messages(e)) for e in examples]
        eos = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        refs = [self.tokenizer(e.reference, add_special_tokens=False)["input_ids"] + eos for e in examples]
        return reference_nll(self.model, self.tokenizer, prompts, refs)

    def saliency(self, example: EvalExample) -> list:
        from workers.classify import saliency

        return [
            [token, round(float(score), 4)]
            for token, score in saliency(self.model, self.tokenizer, example.text)
        ]

    def resources(self) -> dict:
        from workers.generate import folder_size_bytes, peak_memory_bytes

        return {"peak_memory_bytes": peak_memory_bytes(self.model.device),
                "model_size_bytes": self.version.size_bytes or folder_size_bytes(self.path),
                "parameters": int(sum(p.numel() for p in self.model.parameters()))}  # fmt: skip

    def close(self) -> None:
        import torch

        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
