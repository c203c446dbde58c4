from __future__ import annotations

import pytest

from accord.coordinator.policy import load_policy, parse_policy
from accord.errors import InvalidInput


def test_the_seed_policy_decides_the_seed_example() -> None:
    policy = load_policy()
    assert policy.decide("checkout", 85).action == "trial-sample"
    assert policy.decide("checkout", 40).action == "ingredient-video"
    assert policy.decide("homepage", 90).action == policy.default_action
    assert len(policy.digest) == 64


def test_on_an_ltv_network_the_spend_decides_and_trust_rules_never_match() -> None:
    policy = load_policy()
    # no trust score: the trust rules at checkout do not hold, the LTV rules do
    assert policy.decide("checkout", None, 250.0).rule == "checkout-high-value"
    assert policy.decide("checkout", None, 20.0).rule == "checkout-low-value"
    # with a trust score the trust rules come first, whatever the LTV
    assert policy.decide("checkout", 40, 250.0).rule == "checkout-low-trust"
    # a rule on both numbers needs both
    assert policy.decide("product-page", None, 900.0).action == policy.default_action
    assert policy.decide("product-page", 65, 900.0).rule == "product-page-high-value"
    assert policy.decide("product-page", 65, None).action == policy.default_action


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = 1", "version must be"),
        ('version = "v"\ndefault_action = "x"', "at least one"),
        (
            'version = "v"\ndefault_action = "x"\n[[rule]]\nname = "a"\naction = "b"\ntrust_min = 120',
            "0-100",
        ),
        (
            'version = "v"\ndefault_action = "x"\n[[rule]]\nname = "a"\naction = "b"\ncolour = "red"',
            "unknown keys colour",
        ),
        (
            'version = "v"\ndefault_action = "x"\n[[rule]]\nname = "a"\naction = "b"\ntrust_min = 80\ntrust_max = 20',
            "minimum",
        ),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_policies_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_policy(text)


def test_the_digest_changes_with_the_rules() -> None:
    base = (
        'version = "v"\ndefault_action = "x"\n[[rule]]\nname = "a"\naction = "b"\ntrust_min = 50\n'
    )
    assert parse_policy(base).digest != parse_policy(base.replace("50", "60")).digest
