"""Evaluation runs and comparison reports: EvalRun, EvalResult, ComparisonReport."""
