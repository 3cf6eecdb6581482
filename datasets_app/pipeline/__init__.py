"""The dataset build pipeline, Django-free: sources → steps (normalise, filter, sensitive, integrity, dedup, augment,
split) → exports. Examples flow as `Example` records (types.py); each step counts what it drops, and why."""
