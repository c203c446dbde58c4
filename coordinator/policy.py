"""Decision policies as code: declarative rules over trust, LTV and touchpoint.

A policy is a TOML file: ``version``, ``default_action`` and ``[[rule]]`` tables with ``name``,
``action`` and conditions (``touchpoint`` — a name or a list —, ``trust_min``/``trust_max``,
``ltv_min``/``ltv_max``). The first matching rule wins. Every policy has a content hash; the
coordinator records it on the ledger when it takes the policy into use, and every answer
names the version and hash it was decided under.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from accord.errors import InvalidInput

RULE_KEYS = {"name", "action", "touchpoint", "trust_min", "trust_max", "ltv_min", "ltv_max"}


@dataclass(frozen=True)
class Rule:
    name: str
    action: str
    touchpoints: tuple[str, ...]
    trust_min: float | None
    trust_max: float | None
    ltv_min: float | None
    ltv_max: float | None

    def matches(self, touchpoint: str, trust: float | None, ltv: float | None) -> bool:
        """A condition on a number the answer does not have (no trust model, or no LTV
        model) does not hold."""
        if self.touchpoints and touchpoint not in self.touchpoints:
            return False
        if self.trust_min is not None and (trust is None or trust < self.trust_min):
            return False
        if self.trust_max is not None and (trust is None or trust >= self.trust_max):
            return False
        if self.ltv_min is not None and (ltv is None or ltv < self.ltv_min):
            return False
        return not (self.ltv_max is not None and (ltv is None or ltv >= self.ltv_max))

    def describe(self) -> str:
        parts = []
        if self.touchpoints:
            parts.append(f"touchpoint {'/'.join(self.touchpoints)}")
        if self.trust_min is not None:
            parts.append(f"trust ≥ {self.trust_min:g}")
        if self.trust_max is not None:
            parts.append(f"trust < {self.trust_max:g}")
        if self.ltv_min is not None:
            parts.append(f"LTV ≥ {self.ltv_min:g}")
        if self.ltv_max is not None:
            parts.append(f"LTV < {self.ltv_max:g}")
        return " and ".join(parts) or "always"


@dataclass(frozen=True)
class Decision:
    action: str
    rule: str
    because: str


@dataclass(frozen=True)
class Policy:
    version: str
    default_action: str
    rules: tuple[Rule, ...]
    digest: str

    def decide(self, touchpoint: str, trust: float | None, ltv: float | None = None) -> Decision:
        for rule in self.rules:
            if rule.matches(touchpoint, trust, ltv):
                return Decision(rule.action, rule.name, rule.describe())
        return Decision(self.default_action, "default", "no rule matched")


def _number(raw: dict[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}: {key} must be a number")
    return float(value)


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise InvalidInput(f"{where}: {key} must be a non-empty string of at most 64 characters")
    return value


def parse_policy(text: str, source: str = "policy") -> Policy:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source} is not valid TOML: {exc}") from exc
    unknown = set(raw) - {"version", "default_action", "rule"}
    if unknown:
        raise InvalidInput(f"{source}: unknown keys {', '.join(sorted(unknown))}")
    version = _text(raw, "version", source)
    default = _text(raw, "default_action", source)
    rules_raw = raw.get("rule", [])
    if not isinstance(rules_raw, list) or not rules_raw:
        raise InvalidInput(f"{source}: give at least one [[rule]]")
    rules = []
    names = set()
    for i, r in enumerate(rules_raw):
        where = f"{source}: rule {i + 1}"
        if not isinstance(r, dict):
            raise InvalidInput(f"{where} must be a table")
        extra = set(r) - RULE_KEYS
        if extra:
            raise InvalidInput(f"{where}: unknown keys {', '.join(sorted(extra))}")
        name = _text(r, "name", where)
        if name in names:
            raise InvalidInput(f"{where}: the name {name!r} is used twice")
        names.add(name)
        touch = r.get("touchpoint", [])
        if not isinstance(touch, str | list):
            raise InvalidInput(f"{where}: touchpoint must be a name or a list of names")
        touchpoints = (touch,) if isinstance(touch, str) else tuple(touch)
        if not all(isinstance(t, str) and t for t in touchpoints):
            raise InvalidInput(f"{where}: touchpoint must be a name or a list of names")
        rule = Rule(
            name,
            _text(r, "action", where),
            touchpoints,
            _number(r, "trust_min", where),
            _number(r, "trust_max", where),
            _number(r, "ltv_min", where),
            _number(r, "ltv_max", where),
        )
        for low, high in ((rule.trust_min, rule.trust_max), (rule.ltv_min, rule.ltv_max)):
            if low is not None and high is not None and low >= high:
                raise InvalidInput(f"{where}: a minimum must lie below its maximum")
        for bound in (rule.trust_min, rule.trust_max):
            if bound is not None and not 0 <= bound <= 100:
                raise InvalidInput(f"{where}: trust bounds lie within 0-100")
        rules.append(rule)
    canonical = json.dumps(
        {"version": version, "default": default, "rules": [r.__dict__ for r in rules]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return Policy(version, default, tuple(rules), hashlib.sha256(canonical.encode()).hexdigest())


def load_policy(path: Path | None = None) -> Policy:
    """``path``, or the seed policy shipped with Accord."""
    if path is None:
        text = resources.files("accord.coordinator.policies").joinpath("default.toml").read_text()
        return parse_policy(text, "the default policy")
    try:
        return parse_policy(path.read_text(), str(path))
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path} does not exist") from exc
