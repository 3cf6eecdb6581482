"""The OpenAI-compatible serving gateway: /v1/chat/completions, /v1/completions, /v1/models, /v1/feedback."""
