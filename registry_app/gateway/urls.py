"""Mounted at /v1/ by llmops/urls.py, before the fine-tuning API's routes. Placeholder: filled by its owner."""

urlpatterns: list = []
