"""A node's own preprocessing: feature recipes, then scaling and one-hot encoding.

Every node belongs to a different organisation, so each fits its preprocessing on **its own
rows only** and never shows it to anyone: what leaves the node is an embedding computed from
these features, never the features or the fitted statistics.

Two stages:

Recipe
    A pure function of the node's own raw columns that may add derived columns (feature
    engineering is each node's business): ``uci-pay`` adds payment-status levels and counts of
    late months, ``uci-shop`` adds repayment ratios of its own bills and payments, and
    ``uci-social`` declares its categoricals. ``identity`` passes the columns through with kinds
    inferred from the schema; ``purchases`` takes the features a node derives from its purchase
    log (:mod:`accord.data.purchase_features`) as amounts. :func:`choose_recipe` picks one from
    the column names.

Encoding
    ``numeric`` columns are standardised; ``amount`` columns get a signed ``log1p`` first;
    ``categorical`` columns are one-hot over the categories seen at least ``min_category_count``
    times in the node's rows, with an ``other`` column for rare ones (and for unseen values
    later). A missing value becomes 0 after scaling, plus a ``.missing`` indicator column when
    the fitting rows had any missing value in that column. Scaled values are clipped to
    ``±CLIP`` so one wild row cannot saturate a bottom model.

The fitted state, :class:`Preprocessor`, is plain data: :meth:`Preprocessor.to_dict` gives a
JSON-able dict and :meth:`Preprocessor.from_dict` validates one back, so a node process can
persist it next to its bottom model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

from accord.data.purchase_features import FEATURES as PURCHASE_FEATURES
from accord.errors import InvalidInput
from accord.schema import ColumnType

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

ColumnKind = Literal["numeric", "amount", "categorical"]
COLUMN_KINDS: tuple[ColumnKind, ...] = ("numeric", "amount", "categorical")
STATE_VERSION = 1
CLIP = 8.0
"""Scaled values are clipped to ``[-CLIP, CLIP]``."""
MIN_CATEGORY_COUNT = 10
MAX_CATEGORIES = 32
SKEW_FOR_AMOUNT = 2.0
"""``identity`` treats a float column with skewness above this as an amount (signed log)."""

_PAY = ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")
_BILL = tuple(f"BILL_AMT{i}" for i in range(1, 7))
_PAY_AMT = tuple(f"PAY_AMT{i}" for i in range(1, 7))
_SOCIAL = ("LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE")


def signed_log1p(x: FloatArray) -> FloatArray:
    """``sign(x) · log(1 + |x|)``: tames amounts of either sign, keeps 0 at 0."""
    out: FloatArray = np.sign(x) * np.log1p(np.abs(x))
    return out


@dataclass(frozen=True)
class Derived:
    """One column a recipe produces: its name, values (NaN where unknown) and kind."""

    name: str
    values: FloatArray
    kind: ColumnKind


Columns = Mapping[str, FloatArray]
Recipe = Callable[[Columns, Mapping[str, ColumnType]], list[Derived]]


def _identity_kind(kind: ColumnType, values: FloatArray) -> ColumnKind:
    if kind in ("categorical", "bool"):
        return "categorical"
    if kind == "float":
        x = values[np.isfinite(values)]
        if x.size > 2 and float(x.std()) > 0:
            skew = float(np.mean(((x - x.mean()) / x.std()) ** 3))
            if abs(skew) > SKEW_FOR_AMOUNT:
                return "amount"
    return "numeric"


def _identity(cols: Columns, types: Mapping[str, ColumnType]) -> list[Derived]:
    return [Derived(n, v, _identity_kind(types.get(n, "float"), v)) for n, v in cols.items()]


def _stack(cols: Columns, names: Sequence[str]) -> FloatArray:
    return np.stack([cols[n] for n in names], axis=1)


def _uci_pay(cols: Columns, types: Mapping[str, ColumnType]) -> list[Derived]:
    """Repayment status: raw months, their status levels, and counts over the six months."""
    out = [Derived(n, cols[n], "numeric") for n in _PAY]
    # -2 no consumption, -1 paid in full, 0 revolving, k ≥ 1 months late (3+ pooled).
    out += [Derived(f"{n}.status", np.clip(cols[n], -2.0, 3.0), "categorical") for n in _PAY]
    p = _stack(cols, _PAY)
    out += [
        Derived("pay.late_months", (p > 0).sum(axis=1).astype(np.float64), "numeric"),
        Derived("pay.max_delay", p.max(axis=1), "numeric"),
        Derived("pay.unused_months", (p == -2).sum(axis=1).astype(np.float64), "numeric"),
        Derived("pay.paid_full_months", (p == -1).sum(axis=1).astype(np.float64), "numeric"),
        Derived("pay.revolving_months", (p == 0).sum(axis=1).astype(np.float64), "numeric"),
    ]
    return _carry_missing(out, p, "pay.")


def _uci_shop(cols: Columns, types: Mapping[str, ColumnType]) -> list[Derived]:
    """Bills and payments: amounts, how much of each bill was repaid, and trends."""
    out = [Derived(n, cols[n], "amount") for n in (*_BILL, *_PAY_AMT)]
    bill, paid = _stack(cols, _BILL), _stack(cols, _PAY_AMT)
    # PAY_AMTk repays the statement BILL_AMT(k+1) (one month earlier).
    for k in range(5):
        ratio = paid[:, k] / np.maximum(bill[:, k + 1], 1.0)
        out.append(Derived(f"shop.repaid_ratio{k + 1}", np.clip(ratio, 0.0, 2.0), "numeric"))
    total_ratio = paid[:, :5].sum(axis=1) / np.maximum(bill[:, 1:].sum(axis=1), 1.0)
    out += [
        Derived("shop.repaid_ratio", np.clip(total_ratio, 0.0, 2.0), "numeric"),
        Derived("shop.zero_payments", (paid == 0).sum(axis=1).astype(np.float64), "numeric"),
        Derived("shop.empty_bills", (bill <= 0).sum(axis=1).astype(np.float64), "numeric"),
        Derived("shop.bill_mean", bill.mean(axis=1), "amount"),
        Derived("shop.paid_mean", paid.mean(axis=1), "amount"),
        Derived("shop.bill_change", bill[:, 0] - bill[:, 1], "amount"),
        Derived("shop.bill_trend", bill[:, 0] - bill[:, 5], "amount"),
    ]
    return _carry_missing(out, np.concatenate([bill, paid], axis=1), "shop.")


def _uci_social(cols: Columns, types: Mapping[str, ColumnType]) -> list[Derived]:
    return [
        Derived("LIMIT_BAL", cols["LIMIT_BAL"], "amount"),
        Derived("AGE", cols["AGE"], "numeric"),
        Derived("SEX", cols["SEX"], "categorical"),
        Derived("EDUCATION", cols["EDUCATION"], "categorical"),
        Derived("MARRIAGE", cols["MARRIAGE"], "categorical"),
    ]


def _carry_missing(derived: list[Derived], raw: FloatArray, prefix: str) -> list[Derived]:
    """Aggregates (``prefix.*``) over a row with a missing input are missing, never a guess."""
    row_missing = np.isnan(raw).any(axis=1)
    if not row_missing.any():
        return derived
    out = []
    for d in derived:
        if d.name.startswith(prefix):
            values = d.values.copy()
            values[row_missing] = np.nan
            d = Derived(d.name, values, d.kind)
        out.append(d)
    return out


def _purchases(cols: Columns, types: Mapping[str, ColumnType]) -> list[Derived]:
    """Counts, spends and day spans of a purchase log are all heavy-tailed: signed log each."""
    return [Derived(n, cols[n], "amount") for n in PURCHASE_FEATURES]


RECIPES: dict[str, tuple[tuple[str, ...], Recipe]] = {
    "identity": ((), _identity),
    "purchases": (tuple(PURCHASE_FEATURES), _purchases),
    "uci-pay": (_PAY, _uci_pay),
    "uci-shop": ((*_BILL, *_PAY_AMT), _uci_shop),
    "uci-social": (_SOCIAL, _uci_social),
}
"""Recipe name → (raw columns it needs, function)."""


def choose_recipe(columns: Sequence[str]) -> str:
    """The UCI recipe whose columns are exactly ``columns``, else ``identity``."""
    have = set(columns)
    for name, (needed, _) in RECIPES.items():
        if needed and set(needed) == have:
            return name
    return "identity"


@dataclass(frozen=True)
class FittedColumn:
    """How one derived column is encoded; all statistics come from the node's own rows."""

    name: str
    kind: ColumnKind
    center: float = 0.0
    scale: float = 1.0
    categories: tuple[float, ...] = ()
    other: bool = False
    missing_indicator: bool = False

    @property
    def width(self) -> int:
        base = len(self.categories) + int(self.other) if self.kind == "categorical" else 1
        return base + int(self.missing_indicator)

    def output_names(self) -> list[str]:
        if self.kind == "categorical":
            names = [f"{self.name}={_category_label(c)}" for c in self.categories]
            if self.other:
                names.append(f"{self.name}=other")
        else:
            names = [self.name]
        if self.missing_indicator:
            names.append(f"{self.name}.missing")
        return names

    def encode(self, values: FloatArray, out: Float32Array) -> None:
        """Write this column's ``width`` output columns into ``out`` (rows × width)."""
        missing = np.isnan(values)
        if self.kind == "categorical":
            out[:] = 0.0
            known = np.zeros(values.shape, dtype=bool)
            for j, c in enumerate(self.categories):
                hit = values == c
                out[:, j] = hit
                known |= hit
            if self.other:
                out[:, len(self.categories)] = ~known & ~missing
        else:
            x = signed_log1p(values) if self.kind == "amount" else values
            scaled = np.clip((x - self.center) / self.scale, -CLIP, CLIP)
            out[:, 0] = np.where(missing, 0.0, scaled)
        if self.missing_indicator:
            out[:, -1] = missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "center": self.center,
            "scale": self.scale,
            "categories": list(self.categories),
            "other": self.other,
            "missing_indicator": self.missing_indicator,
        }

    @classmethod
    def from_dict(cls, raw: object) -> FittedColumn:
        if not isinstance(raw, dict):
            raise InvalidInput("a fitted column must be a JSON object")
        name, kind = raw.get("name"), raw.get("kind")
        if not isinstance(name, str) or not name:
            raise InvalidInput("a fitted column needs a non-empty 'name'")
        if kind not in COLUMN_KINDS:
            raise InvalidInput(f"column {name!r}: kind must be one of {', '.join(COLUMN_KINDS)}")
        center, scale = _finite(raw.get("center"), name), _finite(raw.get("scale"), name)
        if scale <= 0:
            raise InvalidInput(f"column {name!r}: scale must be positive")
        cats = raw.get("categories")
        if not isinstance(cats, list) or len(cats) > MAX_CATEGORIES:
            raise InvalidInput(f"column {name!r}: 'categories' must be a list of numbers")
        other, indicator = raw.get("other"), raw.get("missing_indicator")
        if not isinstance(other, bool) or not isinstance(indicator, bool):
            raise InvalidInput(f"column {name!r}: 'other' and 'missing_indicator' are booleans")
        return cls(
            name=name,
            kind=cast(ColumnKind, kind),
            center=center,
            scale=scale,
            categories=tuple(_finite(c, name) for c in cats),
            other=other,
            missing_indicator=indicator,
        )


def _finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"column {where!r}: expected a finite number, got {value!r}")
    return float(value)


def _category_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@dataclass(frozen=True)
class Preprocessor:
    """A node's fitted preprocessing: recipe, raw input columns, and one encoder per column."""

    recipe: str
    inputs: tuple[str, ...]
    columns: tuple[FittedColumn, ...]

    @property
    def n_features(self) -> int:
        return sum(c.width for c in self.columns)

    def feature_names(self) -> list[str]:
        return [n for c in self.columns for n in c.output_names()]

    def transform(self, values: npt.ArrayLike) -> Float32Array:
        """Raw rows (``rows × len(inputs)``, NaN where unknown) → ``rows × n_features``."""
        raw = _as_matrix(values, len(self.inputs))
        cols = {n: raw[:, i] for i, n in enumerate(self.inputs)}
        derived = {d.name: d for d in _run_recipe(self.recipe, cols, {})}
        out = np.zeros((raw.shape[0], self.n_features), dtype=np.float32)
        at = 0
        for col in self.columns:
            d = derived.get(col.name)
            if d is None:
                raise InvalidInput(f"recipe {self.recipe!r} no longer produces {col.name!r}")
            col.encode(d.values, out[:, at : at + col.width])
            at += col.width
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "recipe": self.recipe,
            "inputs": list(self.inputs),
            "columns": [c.to_dict() for c in self.columns],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: object) -> Preprocessor:
        if not isinstance(raw, dict):
            raise InvalidInput("a preprocessor state must be a JSON object")
        if raw.get("version") != STATE_VERSION:
            raise InvalidInput(
                f"preprocessor state version {raw.get('version')!r} is not {STATE_VERSION}"
            )
        recipe, inputs, columns = raw.get("recipe"), raw.get("inputs"), raw.get("columns")
        if not isinstance(recipe, str) or recipe not in RECIPES:
            raise InvalidInput(f"unknown preprocessing recipe {recipe!r}")
        if not isinstance(inputs, list) or not all(isinstance(n, str) for n in inputs):
            raise InvalidInput("'inputs' must be a list of column names")
        if not isinstance(columns, list) or not columns:
            raise InvalidInput("'columns' must be a non-empty list")
        return cls(
            recipe=recipe,
            inputs=tuple(inputs),
            columns=tuple(FittedColumn.from_dict(c) for c in columns),
        )

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"preprocessor state is not valid JSON: {exc}") from exc
        return cls.from_dict(raw)


def _as_matrix(values: npt.ArrayLike, width: int) -> FloatArray:
    try:
        raw = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("feature values must be numbers (NaN where unknown)") from exc
    if raw.ndim != 2 or raw.shape[1] != width:
        raise InvalidInput(f"expected a rows × {width} matrix of raw values, got {raw.shape}")
    if np.isinf(raw).any():
        raise InvalidInput("feature values must be finite or NaN, not infinite")
    return raw


def _run_recipe(name: str, cols: Columns, types: Mapping[str, ColumnType]) -> list[Derived]:
    needed, fn = RECIPES[name]
    absent = [n for n in needed if n not in cols]
    if absent:
        raise InvalidInput(f"recipe {name!r} needs columns {', '.join(absent)}")
    return fn(cols, types)


def _fit_column(d: Derived, min_category_count: int) -> FittedColumn:
    values = d.values
    missing = np.isnan(values)
    indicator = bool(missing.any())
    present = values[~missing]
    if d.kind == "categorical":
        cats, counts = np.unique(present, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
        keep = sorted(float(cats[i]) for i in order if counts[i] >= min_category_count)
        return FittedColumn(
            name=d.name,
            kind="categorical",
            categories=tuple(keep),
            other=len(keep) < len(cats),
            missing_indicator=indicator,
        )
    x = signed_log1p(present) if d.kind == "amount" else present
    center = float(x.mean()) if x.size else 0.0
    std = float(x.std()) if x.size else 0.0
    return FittedColumn(
        name=d.name,
        kind=d.kind,
        center=center,
        scale=std if std > 1e-12 else 1.0,
        missing_indicator=indicator,
    )


def fit_preprocessor(
    columns: Mapping[str, ColumnType],
    values: npt.ArrayLike,
    *,
    recipe: str | None = None,
    min_category_count: int = MIN_CATEGORY_COUNT,
) -> Preprocessor:
    """Fit on the node's own rows: ``values`` is ``rows × len(columns)`` (NaN where unknown).

    ``columns`` is the node's schema (name → type, in the order of ``values``' columns).
    ``recipe`` defaults to :func:`choose_recipe` of the column names.
    """
    names = tuple(columns)
    raw = _as_matrix(values, len(names))
    if raw.shape[0] == 0:
        raise InvalidInput("cannot fit preprocessing on zero rows")
    chosen = recipe if recipe is not None else choose_recipe(names)
    if chosen not in RECIPES:
        raise InvalidInput(f"unknown preprocessing recipe {chosen!r}")
    cols = {n: raw[:, i] for i, n in enumerate(names)}
    derived = _run_recipe(chosen, cols, columns)
    if len({d.name for d in derived}) != len(derived):
        raise InvalidInput(f"recipe {chosen!r} produced a column name twice")
    fitted = tuple(_fit_column(d, min_category_count) for d in derived)
    return Preprocessor(recipe=chosen, inputs=names, columns=fitted)


__all__ = [
    "CLIP",
    "COLUMN_KINDS",
    "RECIPES",
    "ColumnKind",
    "Derived",
    "FittedColumn",
    "Preprocessor",
    "choose_recipe",
    "fit_preprocessor",
    "signed_log1p",
]
