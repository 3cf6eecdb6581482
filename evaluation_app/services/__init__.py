"""Writes and orchestration of evaluation: submit runs, execute them on a worker, compare, evaluate after a fine-tune."""
