"""Sticky A/B assignment as a pure function: shares within ±2% of the weights over 10k users, same user, same arm."""

import secrets
from collections import Counter

import pytest

from registry_app.gateway.routing import BUCKETS, bucket, pick, user_key_of

USERS = [f"user-{i}" for i in range(10_000)]


@pytest.mark.parametrize("weights", [[90, 10], [50, 30, 20], [1, 1]])
def test_the_split_is_within_two_percent_of_the_weights_over_10k_users(weights):
    arms = Counter(pick(weights, bucket("support-bot", user)) for user in USERS)
    for index, weight in enumerate(weights):
        assert abs(arms[index] / len(USERS) - weight / sum(weights)) <= 0.02, (weights, arms)


def test_the_same_user_always_gets_the_same_variant_and_deployments_shuffle_independently():
    first = [pick([90, 10], bucket("support-bot", user)) for user in USERS[:2000]]
    again = [pick([90, 10], bucket("support-bot", user)) for user in USERS[:2000]]
    other = [pick([90, 10], bucket("billing-bot", user)) for user in USERS[:2000]]
    assert first == again
    assert first != other


def test_a_zero_weight_arm_gets_nothing_and_every_bucket_has_an_arm():
    assert {pick([100, 0], point) for point in range(BUCKETS)} == {0}
    assert {pick([0, 5], point) for point in range(BUCKETS)} == {1}


def test_the_user_key_is_the_user_field_else_the_header_else_random():
    assert user_key_of("alice", "bob") == ("alice", True)
    assert user_key_of("", "bob") == ("bob", True)
    key, sticky = user_key_of(None, None)
    assert not sticky and key != user_key_of(None, None)[0] and len(key) == len(secrets.token_hex(8))
