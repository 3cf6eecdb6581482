"""Mounted at /v1/ by llmops/urls.py, before the fine-tuning API's routes (no namespace: OpenAI's paths)."""

from django.urls import path

from registry_app.gateway import catalog, feedback, views

urlpatterns = [
    path("chat/completions", views.ChatCompletionsApi.as_view(), name="openai-chat-completions"),
    path("completions", views.CompletionsApi.as_view(), name="openai-completions"),
    path("feedback", feedback.FeedbackApi.as_view(), name="openai-feedback"),
    path("models", catalog.ModelsApi.as_view(), name="openai-models"),
    path("models/<path:model>", catalog.ModelApi.as_view(), name="openai-model"),
]
