"""The serving gateway: an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models,
/v1/feedback) for client applications, mounted at /v1/ by llmops/urls.py before the fine-tuning API.

One module per concern: auth (client tokens), ratelimit (Redis fixed window), routing (model name -> version, sticky
A/B split), requests (OpenAI body validation), engine (the lazily imported model cache: the web process's one
justified torch import), respcache (exact-match answers for temperature 0), requestlog (one ServedResponse row per
request; scrubbed content when sampled), metrics (Prometheus), views and feedback (the DRF views).
"""
