"""The fixed consent vocabulary (shipped as ``vocabulary.toml``), each term mapped to W3C DPV."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from accord.errors import InvalidInput

SECTIONS = ("purposes", "data_categories", "processing", "legal_bases", "collection_methods")


@dataclass(frozen=True)
class Term:
    id: str
    label: str
    dpv: str


@cache
def vocabulary() -> dict[str, dict[str, Term]]:
    raw = tomllib.loads(resources.files("accord.consent").joinpath("vocabulary.toml").read_text())
    return {
        section: {tid: Term(tid, body["label"], body["dpv"]) for tid, body in raw[section].items()}
        for section in SECTIONS
    }


def check_terms(section: str, values: Iterable[str], field: str) -> tuple[str, ...]:
    """Refuse terms outside the vocabulary, naming the field and the allowed values."""
    known = vocabulary()[section]
    result = tuple(values)
    for value in result:
        if value not in known:
            allowed = ", ".join(sorted(known))
            raise InvalidInput(f"{field}: {value!r} is not in the vocabulary; use one of {allowed}")
    if len(set(result)) != len(result):
        raise InvalidInput(f"{field}: a term is listed twice")
    return result


PURPOSES = tuple(vocabulary()["purposes"])
