"""The evaluation engine: pure functions that evaluation_app calls on held-out examples.

- ``workers.evaluate.metrics``: classification metrics (scikit-learn), generation metrics (sacrebleu, rouge-score,
  English and Chinese), perplexity.
- ``workers.evaluate.rules``: code-based rules (regex, JSON / JSON Schema, keywords, length) declared per dataset or
  per run, validated all at once.
- ``workers.evaluate.stats``: candidate-vs-baseline significance on the same examples (paired bootstrap, McNemar),
  wins/losses/ties, Cohen's kappa, latency summaries.

Import the submodules directly (``from workers.evaluate.metrics import classification_metrics``); this package
imports nothing itself, so loading one submodule does not pull in scikit-learn or jieba for another. No Django here.
"""
