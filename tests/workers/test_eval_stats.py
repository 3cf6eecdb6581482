"""Candidate vs baseline on the same examples: the bootstrap finds a real gain, and finds none where there is none."""

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score

from workers.evaluate.stats import (
    cohen_kappa,
    latency_summary,
    mcnemar,
    paired_bootstrap,
    paired_bootstrap_metric,
    wins_losses_ties,
)


def scores(seed=7, n=300):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.8, n), rng


def centred_noise(rng, n, scale=0.1):
    noise = rng.normal(0, scale, n)
    return noise - noise.mean()  # the sample's true delta is then exactly the shift


def test_the_bootstrap_interval_covers_a_known_gain_and_excludes_zero():
    baseline, rng = scores()
    candidate = baseline + 0.1 + centred_noise(rng, len(baseline))
    got = paired_bootstrap(baseline.tolist(), candidate.tolist())
    assert got["delta"] == pytest.approx(0.1)
    assert 0 < got["low"] < 0.1 < got["high"]
    assert got["p_value"] < 0.01
    assert got["baseline"] == pytest.approx(baseline.mean()) and got["n"] == 300


def test_the_bootstrap_interval_includes_zero_when_nothing_changed():
    baseline, rng = scores()
    candidate = baseline + centred_noise(rng, len(baseline))
    got = paired_bootstrap(baseline, candidate)
    assert got["low"] < 0 < got["high"]
    assert got["p_value"] > 0.5


def test_the_95_percent_interval_covers_the_true_gain_in_most_samples():
    covered = 0
    for seed in range(40):
        baseline, rng = scores(seed)
        candidate = baseline + 0.1 + rng.normal(0, 0.1, len(baseline))  # true gain 0.1, sample gain varies
        got = paired_bootstrap(baseline, candidate, n_resamples=500, seed=seed)
        covered += got["low"] <= 0.1 <= got["high"]
    assert covered >= 34  # 38 expected; a correct 95% interval covers 33 or fewer times with probability 0.3%


def test_the_bootstrap_is_reproducible_with_a_seed_and_respects_the_confidence():
    baseline, rng = scores()
    candidate = baseline + rng.normal(0.02, 0.1, len(baseline))
    assert paired_bootstrap(baseline, candidate, seed=3) == paired_bootstrap(baseline, candidate, seed=3)
    wide = paired_bootstrap(baseline, candidate, confidence=0.99)
    narrow = paired_bootstrap(baseline, candidate, confidence=0.8)
    assert wide["low"] < narrow["low"] < narrow["high"] < wide["high"]


def test_identical_sides_give_a_zero_width_interval_and_p_value_one():
    got = paired_bootstrap([0.5, 0.7, 0.1], [0.5, 0.7, 0.1], n_resamples=50)
    assert (got["delta"], got["low"], got["high"], got["p_value"]) == (0.0, 0.0, 0.0, 1.0)


def test_the_bootstrap_rejects_unpaired_or_empty_scores():
    with pytest.raises(ValueError, match="2 baseline scores but 1 candidate scores"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no examples"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        paired_bootstrap([1.0], [1.0], confidence=95)


def test_the_metric_bootstrap_resamples_a_corpus_metric_like_macro_f1():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, 400)
    base_pred = np.where(rng.random(400) < 0.6, truth, rng.integers(0, 3, 400))
    cand_pred = np.where(rng.random(400) < 0.85, truth, rng.integers(0, 3, 400))
    preds = {"baseline": base_pred, "candidate": cand_pred}

    def macro_f1(
        idx, side
    ):  # numpy's macro-F1: scikit-learn's f1_score costs ~8 ms a call in argument checks
        t, p = truth[idx], preds[side][idx]
        f1s = []
        for k in range(3):
            tp, fp, fn = np.sum((p == k) & (t == k)), np.sum((p == k) & (t != k)), np.sum((p != k) & (t == k))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        return float(np.mean(f1s))

    got = paired_bootstrap_metric(macro_f1, 400, n_resamples=200)
    assert got["baseline"] == pytest.approx(f1_score(truth, base_pred, average="macro"))
    assert got["candidate"] == pytest.approx(f1_score(truth, cand_pred, average="macro"))
    assert 0 < got["low"] < got["delta"] < got["high"]
    assert got["p_value"] < 0.01 and got["n"] == 400


def test_mcnemar_uses_the_exact_binomial_below_25_discordant_pairs():
    # 5 fixed, 1 broken: two-sided exact p = 2 * (C(6,0) + C(6,1)) / 2**6 = 14/64
    baseline = [True, True, False, False, True, False, True, False, False, False]
    candidate = [True, False, True, True, True, True, True, True, True, False]
    got = mcnemar(baseline, candidate)
    assert (got["fixed"], got["broken"], got["both_right"], got["both_wrong"]) == (5, 1, 3, 1)
    assert got["p_value"] == pytest.approx(14 / 64)
    assert got["method"] == "exact binomial"


def test_mcnemar_uses_chi_square_with_continuity_correction_from_25_discordant_pairs():
    # 20 fixed, 10 broken: (|20 - 10| - 1)^2 / 30 = 2.7; p = P(chi2 with 1 dof > 2.7) = 0.10035
    baseline = [False] * 20 + [True] * 10 + [True] * 5
    candidate = [True] * 20 + [False] * 10 + [True] * 5
    got = mcnemar(baseline, candidate)
    assert got["statistic"] == pytest.approx(2.7)
    assert got["p_value"] == pytest.approx(0.100348, abs=1e-5)
    assert got["method"] == "chi-square with continuity correction"


def test_mcnemar_with_no_disagreement_finds_no_difference():
    got = mcnemar([True, False], [True, False])
    assert (got["fixed"], got["broken"], got["p_value"]) == (0, 0, 1.0)


def test_wins_losses_and_ties_count_per_example_with_a_tolerance():
    got = wins_losses_ties([0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.5, 0.5 + 1e-12])
    assert (got["wins"], got["losses"], got["ties"], got["n"]) == (1, 1, 2, 4)
    assert got["win_indices"] == [0] and got["loss_indices"] == [1]
    assert got["wins_rate"] == 0.25
    assert wins_losses_ties([0.5], [0.6], tolerance=0.2)["ties"] == 1


def test_kappa_equals_scikit_learn_and_is_none_when_undefined():
    a = ["good", "bad", "good", "good", "bad", "meh", "good"]
    b = ["good", "bad", "bad", "good", "bad", "meh", "meh"]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(["good"], ["good"]) is None
    assert cohen_kappa(["good", "good"], ["good", "good"]) is None


def test_latency_summary_gives_linear_percentiles_and_overall_token_throughput():
    got = latency_summary([0.1, 0.2, 0.3, 1.0], [10, 20, 30, 40])
    assert got["p50"] == pytest.approx(0.25)
    assert got["p95"] == pytest.approx(np.percentile([0.1, 0.2, 0.3, 1.0], 95))
    assert got["mean"] == pytest.approx(0.4)
    assert got["tokens_per_s"] == pytest.approx(100 / 1.6)
    assert latency_summary([0.5])["tokens_per_s"] is None
    assert latency_summary([])["p50"] is None
