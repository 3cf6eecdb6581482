from django.apps import AppConfig


class LlmopsConfig(AppConfig):
    name = "llmops"
    verbose_name = "Portal core"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from llmops.metrics import JobsCollector

        if not getattr(REGISTRY, "_llmops_jobs_registered", False):
            REGISTRY.register(JobsCollector())
            REGISTRY._llmops_jobs_registered = True
