"""Vertical split learning: bottom models at the nodes, a top model at the coordinator.

Each feature node runs a :class:`BottomModel` on its own columns and produces a bounded
embedding (``tanh``, so every entry lies in ``[-1, 1]``) per row. The coordinator only ever sees
the **sum** of the nodes' embeddings (masked with :mod:`accord.crypto.masking`; the masks cancel
in the sum), and feeds it, with the 0/1 vector of which nodes contributed each row, to the
:class:`TopModel`, which outputs the default logit. A node that lacks a customer, or is dropped
for that row, contributes zeros.

One exchange ("round") as a node and the coordinator run it over a network
---------------------------------------------------------------------------
1. **Plan** (coordinator, :class:`RoundPlanner`). It picks the round's rows (all eligible
   training rows by default) and, per row, which nodes contribute: each node that has the row
   is kept with probability ``1 − party_dropout``, topped up to at least ``min_contributors``
   (``k``, property P2) — drawn once per run by default, so a customer's contributor set never
   changes between rounds (``SplitConfig.dropout_scope``). It sends node *i* the round number,
   the matrix height and the positions it fills, with its own row keys for those positions.
2. **Embed** (node, :meth:`NodeTrainer.forward`). ``e_i = bottom_i(x_i[rows_i])``; placed at its
   positions in a ``rows × d`` zero matrix (:func:`scatter_rows`), masked, sent up
   (``uint64``).
3. **Step** (coordinator, :meth:`TopTrainer.step`). It sums the masked matrices (masks cancel),
   trains the top model for ``local_epochs`` passes over the round's rows with that sum fixed,
   then returns ``G = ∂ℓ_row/∂S_row``, the gradient of each row's loss w.r.t. the row's sum.
   Since ``∂S/∂e_i = I``, that is also every contributing node's gradient; node *i* is sent
   ``G`` only at its own positions (``float32``).
4. **Update** (node, :meth:`NodeTrainer.backward`). The node reuses that one gradient for
   ``local_epochs`` passes of minibatch Adam over its rows — several local steps per exchange,
   as in FedBCD: by default on the linear surrogate ``⟨G, e_i(θ)⟩`` (``node_objective =
   "gradient"``), or by regressing onto the proximal target ``clip(e_i − α·G, ±0.999)``
   (``"target"``), with ``e_i`` recomputed from weights unchanged since step 2. On the UCI
   data both work with the cosine schedule; ``gradient`` was slightly better and steadier over
   ten seeds, so it is the default.

So a round is two messages per node (embed, then gradient); a network layer may fold round
``r``'s gradient and round ``r + 1``'s embedding request into one message. Both sides derive
their learning rate from the round number (cosine decay over ``rounds``) and their shuffling
from ``(seed, round)``, so a node process that restarts between messages (Flower's Deployment
Engine starts one per message) only needs the state from :meth:`NodeTrainer.to_bytes`.

Rows with fewer than ``k`` contributors (P2)
-------------------------------------------
The label node holds only labels, so it contributes no features to a sum; with a single feature
node the "sum" would be that node's embedding in the clear, masks or not. Such rows therefore
never enter an exchange: :class:`RoundPlanner` drops training rows with fewer than ``k`` nodes
holding them, dropout never leaves a row with fewer than ``k``, and :func:`plan_scoring` leaves
them unscored (the caller answers "not enough sources", :class:`TooFewSources`). The model is
thus trained for, and serves, every consented subset of at least ``k`` nodes.

:func:`train_split` runs exactly this protocol in one process with direct calls, through any
:class:`Aggregator` (:class:`PlainSum`, :class:`FixedPointSum`, or :class:`MaskedSum`, which
goes through :func:`accord.crypto.masking.mask_embedding` and ``aggregate``);
:func:`train_centralized` trains the same architecture jointly on the joined data.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from accord.crypto import masking
from accord.crypto.keys import KeyAgreementKey
from accord.errors import InvalidInput, NotReady
from accord.protocol import SCORE_PURPOSE, TRAIN_PURPOSE
from accord.scoring import ziln

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

EMBEDDING_BOUND = 1.0
"""Every embedding entry lies in ``[-1, 1]`` (tanh): far inside masking's ``±2^38``."""
TARGET_BOUND = 0.999
"""A node's regression target is clipped here, inside tanh's range."""
GRADIENT_LIMIT = 1e3
"""A gradient entry beyond this is refused as malformed (real ones are ≲ 10)."""
MIN_CONTRIBUTORS = masking.MIN_NODES
"""P2's ``k``: a sum the coordinator sees covers at least this many nodes."""
EMBED_BYTES_PER_VALUE = 8
"""Masked embeddings travel as ``uint64`` fixed point."""
GRAD_BYTES_PER_VALUE = 4
"""Gradients travel as ``float32``."""

NodeObjective = Literal["target", "gradient"]
DropoutScope = Literal["run", "round"]
Head = Literal["binary", "ziln"]
HEAD_OUTPUTS: dict[str, int] = {"binary": 1, "ziln": 3}
"""What the top model emits per row: a default logit, or a ZILN's (logit, mu, raw scale)."""


class TooFewSources(NotReady):
    """Fewer than ``k`` nodes can contribute to a row: a score would expose one node (P2)."""


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitConfig:
    """Architecture and training schedule, shared by the coordinator and every node."""

    embedding_dim: int = 16
    bottom_hidden: tuple[int, ...] = (64,)
    top_hidden: tuple[int, ...] = (32,)
    rounds: int = 20
    """Exchanges (forward + backward) of federated training."""
    local_epochs: int = 2
    """Passes over a round's rows that each side makes per exchange."""
    batch_size: int = 256
    rows_per_round: int = 0
    """Rows per exchange; 0 means every eligible training row in every round."""
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    target_step: float = 1.0
    """``α`` of the node's target ``e − α·G``."""
    party_dropout: float = 0.3
    dropout_scope: DropoutScope = "run"
    """``run``: each training row keeps one contributor set for the whole run, so the
    coordinator never sees sums over two different sets of one customer (whose difference
    would approximate one node's embedding); ``round``: a fresh set every round."""
    min_contributors: int = MIN_CONTRIBUTORS
    cosine_decay: bool = True
    node_objective: NodeObjective = "gradient"
    """How a node reuses one gradient for many local steps: ``target`` regresses onto
    ``e − α·G``; ``gradient`` descends the linear surrogate ``⟨G, e(θ)⟩`` (vanilla FedBCD)."""
    head: Head = "binary"
    """``binary``: trust (labels 0/1, binary cross-entropy); ``ziln``: lifetime value (labels
    are spends ≥ 0, zero-inflated log-normal likelihood, :mod:`accord.scoring.ziln`)."""

    def __post_init__(self) -> None:
        ints = {
            "embedding_dim": self.embedding_dim,
            "rounds": self.rounds,
            "local_epochs": self.local_epochs,
            "batch_size": self.batch_size,
        }
        for name, value in ints.items():
            if not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
        if any(not isinstance(h, int) or h < 1 for h in (*self.bottom_hidden, *self.top_hidden)):
            raise InvalidInput("hidden layer sizes must be positive integers")
        if self.rows_per_round < 0:
            raise InvalidInput("rows_per_round must be 0 (all rows) or positive")
        positive = {
            "learning_rate": self.learning_rate,
            "target_step": self.target_step,
        }
        for name, x in positive.items():
            if not (math.isfinite(x) and x > 0):
                raise InvalidInput(f"{name} must be a positive number, got {x!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InvalidInput("weight_decay must be a non-negative number")
        if not 0.0 <= self.party_dropout < 1.0:
            raise InvalidInput("party_dropout must lie in [0, 1)")
        if self.dropout_scope not in ("run", "round"):
            raise InvalidInput("dropout_scope must be 'run' or 'round'")
        if self.node_objective not in ("target", "gradient"):
            raise InvalidInput("node_objective must be 'target' or 'gradient'")
        if self.head not in HEAD_OUTPUTS:
            raise InvalidInput(f"head must be one of {', '.join(HEAD_OUTPUTS)}, got {self.head!r}")
        if self.min_contributors < MIN_CONTRIBUTORS:
            raise InvalidInput(
                f"min_contributors (k) must be at least {MIN_CONTRIBUTORS}: a smaller k lets the "
                "coordinator see one node's embedding"
            )

    def learning_rate_at(self, round_no: int) -> float:
        """The learning rate of round ``round_no`` (0-based): cosine decay over ``rounds``."""
        if not self.cosine_decay:
            return self.learning_rate
        r = min(max(round_no, 0), self.rounds)
        return self.learning_rate * 0.5 * (1.0 + math.cos(math.pi * r / self.rounds))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SplitConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise InvalidInput(f"unknown split-model settings: {', '.join(sorted(unknown))}")
        values = dict(raw)
        for key in ("bottom_hidden", "top_hidden"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise InvalidInput(f"malformed split-model settings: {exc}") from exc


# --- models -------------------------------------------------------------------------------


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Build weights from ``seed`` without touching torch's global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _hidden(width: int, sizes: Sequence[int]) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    for h in sizes:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return layers, width


class BottomModel(nn.Module):
    """A node's network: its features → a ``tanh`` embedding of ``embedding_dim``."""

    def __init__(self, n_features: int, config: SplitConfig) -> None:
        super().__init__()
        if n_features < 1:
            raise InvalidInput("a bottom model needs at least one feature")
        layers, width = _hidden(n_features, config.bottom_hidden)
        self.net = nn.Sequential(*layers, nn.Linear(width, config.embedding_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class TopModel(nn.Module):
    """The coordinator's network: (sum of embeddings, who contributed) → the head's output:
    a default logit per row (``binary``), or a row of three ZILN numbers (``ziln``)."""

    def __init__(self, n_sources: int, config: SplitConfig) -> None:
        super().__init__()
        if n_sources < 1:
            raise InvalidInput("a top model needs at least one source")
        layers, width = _hidden(config.embedding_dim + n_sources, config.top_hidden)
        self.outputs = HEAD_OUTPUTS[config.head]
        self.net = nn.Sequential(*layers, nn.Linear(width, self.outputs))

    def forward(self, total: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(torch.cat([total, sources], dim=1))
        return out.squeeze(1) if self.outputs == 1 else out

    def start_from(self, labels: FloatArray) -> None:
        """ZILN only: make the output bias the labels' constant maximum-likelihood fit, so
        training starts from the right scale of spend instead of ``exp(0)``."""
        if self.outputs != HEAD_OUTPUTS["ziln"]:
            return
        raw = ziln.raw_output_for(ziln.fit_constant(labels))[0]
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.copy_(torch.from_numpy(raw.astype(np.float32)))


def check_labels(head: Head, labels: npt.ArrayLike, rows: int) -> Float32Array:
    """One label per row: 0/1 outcomes for ``binary``, finite spends ≥ 0 for ``ziln``."""
    y = np.asarray(labels, dtype=np.float32).reshape(-1)
    if y.shape != (rows,):
        raise InvalidInput(f"expected one label per row ({rows}), got {y.size}")
    if head == "binary" and not np.isin(y, (0.0, 1.0)).all():
        raise InvalidInput("trust labels must be 0 or 1")
    if head == "ziln" and not (np.isfinite(y).all() and (y >= 0).all()):
        raise InvalidInput("spend labels must be finite and non-negative")
    return y


def head_loss(
    head: Head, output: torch.Tensor, y: torch.Tensor, *, total: bool = False
) -> torch.Tensor:
    """The head's loss: mean over rows, or (``total``) the sum, whose gradient per row is the
    row's own loss gradient."""
    if head == "binary":
        reduction = "sum" if total else "mean"
        return nn.functional.binary_cross_entropy_with_logits(output, y, reduction=reduction)
    logit, mu, sigma = ziln.ziln_params(output)
    nll = -ziln.ziln_log_likelihood(y, logit, mu, sigma)
    return nll.sum() if total else nll.mean()


def _adam(model: nn.Module, config: SplitConfig) -> torch.optim.Adam:
    return torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _minibatches(n: int, batch: int, epochs: int, rng: np.random.Generator) -> Iterator[IntArray]:
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            yield order[start : start + batch]


def _state_bytes(payload: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _load_state(data: bytes, what: str) -> dict[str, Any]:
    try:
        raw = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt archive
        raise InvalidInput(f"{what} state is not a readable model archive: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what} state is not a model archive")
    return raw


def _float_matrix(values: npt.ArrayLike, rows: int, cols: int, what: str) -> Float32Array:
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape != (rows, cols):
        raise InvalidInput(f"{what} must be {rows} × {cols}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{what} holds NaN or infinite values")
    return arr


def _row_indices(rows: npt.ArrayLike, limit: int, what: str) -> IntArray:
    idx = np.asarray(rows)
    if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise InvalidInput(f"{what} must be a 1-D array of row indices")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= limit):
        raise InvalidInput(f"{what} refers to rows outside 0..{limit - 1}")
    return idx


# --- the node's side ----------------------------------------------------------------------


class NodeTrainer:
    """One node's half of the exchange: embed its rows, then learn from the sum's gradient.

    ``features`` are the node's preprocessed rows (``n_local × n_features``); requests name rows
    by their index in it (the network layer maps the round's row keys to these indices).
    """

    def __init__(
        self, name: str, features: npt.ArrayLike, config: SplitConfig, *, seed: int
    ) -> None:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise InvalidInput(f"node {name!r}: features must be a non-empty rows × columns matrix")
        if not np.isfinite(x).all():
            raise InvalidInput(f"node {name!r}: features must be finite (preprocess them first)")
        self.name = name
        self.config = config
        self.seed = seed
        self._x = torch.from_numpy(np.ascontiguousarray(x))
        with _seeded(seed):
            self.model = BottomModel(x.shape[1], config)
        self.optimizer = _adam(self.model, config)
        self.last_round = -1

    @property
    def n_rows(self) -> int:
        return int(self._x.shape[0])

    @property
    def embedding_dim(self) -> int:
        return self.config.embedding_dim

    def forward(self, local_rows: npt.ArrayLike) -> Float32Array:
        """This node's embedding of ``local_rows``: ``len(local_rows) × d``, entries in [-1, 1]."""
        idx = _row_indices(local_rows, self.n_rows, f"node {self.name!r}: rows")
        with torch.no_grad():
            out: Float32Array = self.model(self._x[torch.from_numpy(idx)]).numpy()
        return out

    def backward(
        self, local_rows: npt.ArrayLike, grad_of_sum: npt.ArrayLike, round_no: int
    ) -> float:
        """Learn from ``G = ∂ℓ/∂S`` for the rows this node embedded in round ``round_no``.

        The rows are those of the round's :meth:`forward` call at this node's positions; the
        weights must not have changed in between. Refuses a round it has already learnt from.
        Returns ``mean ⟨G, e_after − e_before⟩``, the first-order change of the loss that the
        local steps made (negative means progress), for the node's logs.
        """
        idx = _row_indices(local_rows, self.n_rows, f"node {self.name!r}: rows")
        if round_no <= self.last_round:
            raise InvalidInput(
                f"node {self.name!r} already learnt from round {self.last_round}; "
                f"refusing round {round_no} (replayed or out of order)"
            )
        grad = _float_matrix(grad_of_sum, idx.size, self.embedding_dim, "gradient of the sum")
        if grad.size and float(np.abs(grad).max()) > GRADIENT_LIMIT:
            raise InvalidInput(f"gradient entries exceed ±{GRADIENT_LIMIT:g}; refusing it")
        self.last_round = round_no
        if idx.size == 0:
            return 0.0
        _set_lr(self.optimizer, self.config.learning_rate_at(round_no))
        x = self._x[torch.from_numpy(idx)]
        g = torch.from_numpy(grad)
        with torch.no_grad():
            start = self.model(x)
        by_target = self.config.node_objective == "target"
        target = (start - self.config.target_step * g).clamp(-TARGET_BOUND, TARGET_BOUND)
        rng = np.random.default_rng([self.seed, round_no, 1])
        self.model.train()
        for mb in _minibatches(idx.size, self.config.batch_size, self.config.local_epochs, rng):
            b = torch.from_numpy(mb)
            e: torch.Tensor = self.model(x[b])
            loss: torch.Tensor
            if by_target:
                loss = ((e - target[b]) ** 2).sum(dim=1).mean()
            else:
                loss = (e * g[b]).sum(dim=1).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
        with torch.no_grad():
            return float(((self.model(x) - start) * g).sum(dim=1).mean())

    def to_bytes(self) -> bytes:
        """Weights, optimizer state and the last round: all a restarted process needs."""
        return _state_bytes(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "last_round": self.last_round,
            }
        )

    def restore(self, data: bytes) -> None:
        raw = _load_state(data, f"node {self.name!r}")
        try:
            self.model.load_state_dict(raw["model"])
            self.optimizer.load_state_dict(raw["optimizer"])
            self.last_round = int(raw["last_round"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise InvalidInput(f"node {self.name!r}: state does not fit this model: {exc}") from exc


# --- the coordinator's side ---------------------------------------------------------------


class TopTrainer:
    """The coordinator's half: learn from the summed embeddings, return the sum's gradient."""

    def __init__(self, n_sources: int, config: SplitConfig, *, seed: int) -> None:
        self.n_sources = n_sources
        self.config = config
        self.seed = seed
        with _seeded(seed):
            self.model = TopModel(n_sources, config)
        self.optimizer = _adam(self.model, config)
        self.last_round = -1

    def _inputs(
        self, total: npt.ArrayLike, sources: npt.ArrayLike
    ) -> tuple[torch.Tensor, torch.Tensor]:
        src = np.asarray(sources)
        if src.ndim != 2 or src.shape[1] != self.n_sources or src.dtype != np.bool_:
            raise InvalidInput(f"sources must be a rows × {self.n_sources} boolean matrix")
        s = _float_matrix(total, src.shape[0], self.config.embedding_dim, "sum of embeddings")
        # A sum over m nodes lies within ±m (tanh); anything beyond means a broken aggregate.
        limit = src.sum(axis=1, keepdims=True) * EMBEDDING_BOUND + 1e-3
        if (np.abs(s) > limit).any():
            raise InvalidInput("sum of embeddings exceeds what its contributors can produce")
        return torch.from_numpy(s), torch.from_numpy(src.astype(np.float32))

    def step(
        self,
        total: npt.ArrayLike,
        labels: npt.ArrayLike,
        sources: npt.ArrayLike,
        round_no: int,
    ) -> Float32Array:
        """Train the top model on one round, return ``∂ℓ_row/∂S_row`` (rows × d, float32).

        ``total`` is the decoded sum of the round's masked embeddings, ``sources`` which nodes
        contributed each row, ``labels`` the 0/1 outcomes (or spends, for the ZILN head). The
        gradient is taken after the local passes, per row (not divided by the number of rows).
        """
        if round_no <= self.last_round:
            raise InvalidInput(f"round {round_no} is not after round {self.last_round}")
        s, src = self._inputs(total, sources)
        y = check_labels(self.config.head, labels, s.shape[0])
        if (src.sum(dim=1) < self.config.min_contributors).any():
            raise TooFewSources(
                f"a row of the round has fewer than {self.config.min_contributors} contributors"
            )
        if self.last_round < 0:
            self.model.start_from(y.astype(np.float64))
        self.last_round = round_no
        yt = torch.from_numpy(y)
        _set_lr(self.optimizer, self.config.learning_rate_at(round_no))
        rng = np.random.default_rng([self.seed, round_no, 2])
        self.model.train()
        head = self.config.head
        for mb in _minibatches(s.shape[0], self.config.batch_size, self.config.local_epochs, rng):
            b = torch.from_numpy(mb)
            loss = head_loss(head, self.model(s[b], src[b]), yt[b])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
        leaf = s.clone().requires_grad_(True)
        total_loss = head_loss(head, self.model(leaf, src), yt, total=True)
        (grad,) = torch.autograd.grad(total_loss, leaf)
        out: Float32Array = grad.numpy().astype(np.float32, copy=False)
        return out

    def logits(self, total: npt.ArrayLike, sources: npt.ArrayLike) -> FloatArray:
        """The head's output for summed embeddings: default logits (``binary``, one per row)
        or ZILN rows (``ziln``, rows × 3, see :func:`accord.scoring.ziln.params_from_output`).
        Refuses rows with fewer than ``k`` sources."""
        s, src = self._inputs(total, sources)
        if (src.sum(dim=1) < self.config.min_contributors).any():
            raise TooFewSources(
                f"a row has fewer than {self.config.min_contributors} contributors: "
                "it cannot be scored without exposing one node"
            )
        with torch.no_grad():
            out: FloatArray = self.model(s, src).numpy().astype(np.float64)
        return out

    def to_bytes(self) -> bytes:
        return _state_bytes(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "last_round": self.last_round,
            }
        )

    def restore(self, data: bytes) -> None:
        raw = _load_state(data, "top model")
        try:
            self.model.load_state_dict(raw["model"])
            self.optimizer.load_state_dict(raw["optimizer"])
            self.last_round = int(raw["last_round"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise InvalidInput(f"top model state does not fit this model: {exc}") from exc


# --- planning rounds ----------------------------------------------------------------------


def _check_k(k: int) -> None:
    if k < MIN_CONTRIBUTORS:
        raise InvalidInput(f"k must be at least {MIN_CONTRIBUTORS}; {k} would expose one node")


def sample_sources(
    available: npt.ArrayLike, rng: np.random.Generator, *, dropout: float, keep: int
) -> BoolArray:
    """Party dropout: keep each available source with probability ``1 − dropout``.

    A row left with fewer than ``min(keep, available)`` sources gets randomly chosen dropped
    ones back, so no row falls below ``k`` when it had ``k`` to begin with.
    """
    avail = np.asarray(available, dtype=bool)
    if avail.ndim != 2:
        raise InvalidInput("availability must be a rows × sources boolean matrix")
    u = rng.random(avail.shape)
    score = np.where(avail, u, -1.0)
    rank = np.argsort(np.argsort(-score, axis=1, kind="stable"), axis=1, kind="stable")
    kept_by_draw = (avail & (u >= dropout)).sum(axis=1)
    floor = np.minimum(keep, avail.sum(axis=1))
    n_keep = np.maximum(kept_by_draw, floor)
    out: BoolArray = avail & (rank < n_keep[:, None])
    return out


@dataclass(frozen=True)
class RoundPlan:
    """One exchange: the aligned rows in matrix order, and which nodes contribute each row."""

    round_no: int
    rows: IntArray
    sources: BoolArray

    @property
    def n_rows(self) -> int:
        return int(self.rows.size)

    def positions(self, node: int) -> IntArray:
        """Positions (matrix rows) that node number ``node`` fills this round."""
        out: IntArray = np.flatnonzero(self.sources[:, node]).astype(np.int64)
        return out

    def participants(self) -> list[int]:
        """The nodes with at least one position: the round's node set for masking."""
        return [int(i) for i in np.flatnonzero(self.sources.any(axis=0))]

    def without(self, nodes: Collection[int], *, k: int = MIN_CONTRIBUTORS) -> RoundPlan:
        """The plan for a redo when ``nodes`` dropped mid-round (P8): their contributions go,
        and rows left with fewer than ``k`` contributors leave the round. Use a new masking
        attempt number for the redo (see :mod:`accord.crypto.masking`).
        """
        _check_k(k)
        sources = self.sources.copy()
        sources[:, list(nodes)] = False
        keep = sources.sum(axis=1) >= k
        return RoundPlan(self.round_no, self.rows[keep], sources[keep])


class RoundPlanner:
    """The coordinator's schedule: rows per round and per-row contributors (with dropout).

    ``available`` is ``n_aligned × n_nodes``: which node holds (and has consent for) each
    aligned row. Training rows held by fewer than ``k`` nodes are left out (``excluded``).
    """

    def __init__(
        self,
        available: npt.ArrayLike,
        train_rows: npt.ArrayLike,
        config: SplitConfig,
        *,
        seed: int,
    ) -> None:
        self.available = np.asarray(available, dtype=bool)
        if self.available.ndim != 2:
            raise InvalidInput("availability must be an aligned-rows × nodes boolean matrix")
        rows = _row_indices(train_rows, self.available.shape[0], "training rows")
        enough = self.available[rows].sum(axis=1) >= config.min_contributors
        self.rows: IntArray = rows[enough]
        self.excluded = int((~enough).sum())
        if self.rows.size == 0:
            raise TooFewSources(
                f"no training row is held by at least {config.min_contributors} nodes"
            )
        self.config = config
        self.seed = seed
        self._run_sources = self._sample(self.rows, np.random.default_rng([seed, 4]))

    def _sample(self, rows: IntArray, rng: np.random.Generator) -> BoolArray:
        return sample_sources(
            self.available[rows],
            rng,
            dropout=self.config.party_dropout,
            keep=self.config.min_contributors,
        )

    def plan(self, round_no: int) -> RoundPlan:
        cfg = self.config
        n = self.rows.size
        per = cfg.rows_per_round if 0 < cfg.rows_per_round < n else n
        if per == n:
            picked = np.arange(n)
        else:
            chunks = math.ceil(n / per)
            epoch, chunk = divmod(round_no, chunks)
            order = np.random.default_rng([self.seed, epoch, 3]).permutation(n)
            picked = np.sort(order[chunk * per : (chunk + 1) * per])
        rows = self.rows[picked]
        if cfg.dropout_scope == "run":
            sources = self._run_sources[picked]
        else:
            sources = self._sample(rows, np.random.default_rng([self.seed, round_no, 4]))
        return RoundPlan(round_no, rows, sources)


def plan_scoring(
    available: npt.ArrayLike, rows: npt.ArrayLike, *, round_no: int, k: int = MIN_CONTRIBUTORS
) -> tuple[RoundPlan, BoolArray]:
    """A forward-only round over ``rows`` with every available node; rows with < ``k`` are cut.

    Returns the plan and, per requested row, whether it is in the plan (scorable).
    """
    _check_k(k)
    avail = np.asarray(available, dtype=bool)
    idx = _row_indices(rows, avail.shape[0], "rows to score")
    scorable: BoolArray = avail[idx].sum(axis=1) >= k
    kept = idx[scorable]
    return RoundPlan(round_no, kept, avail[kept].copy()), scorable


def scatter_rows(embedding: npt.ArrayLike, positions: npt.ArrayLike, n_rows: int) -> Float32Array:
    """Place a node's embedding at its positions of the round matrix; zeros elsewhere."""
    emb = np.asarray(embedding, dtype=np.float32)
    pos = _row_indices(positions, n_rows, "positions")
    if emb.ndim != 2 or emb.shape[0] != pos.size:
        raise InvalidInput("one embedding row per position is needed")
    out = np.zeros((n_rows, emb.shape[1]), dtype=np.float32)
    out[pos] = emb
    return out


# --- aggregation: the seam where masking goes ---------------------------------------------


class Aggregator(Protocol):
    """Turns the nodes' matrices of one round into their sum (what the coordinator sees)."""

    def aggregate(
        self, round_no: int, purpose: str, parts: Mapping[str, Float32Array]
    ) -> FloatArray: ...


class PlainSum:
    """The float sum, no encoding: a reference for what masking must reproduce."""

    def aggregate(
        self, round_no: int, purpose: str, parts: Mapping[str, Float32Array]
    ) -> FloatArray:
        arrays = list(parts.values())
        total = np.zeros(arrays[0].shape, dtype=np.float64)
        for a in arrays:
            total += a
        return total


class FixedPointSum:
    """The sum in masking's fixed-point ring without masks: bit-identical to :class:`MaskedSum`."""

    def aggregate(
        self, round_no: int, purpose: str, parts: Mapping[str, Float32Array]
    ) -> FloatArray:
        arrays = list(parts.values())
        total = np.zeros(arrays[0].shape, dtype=np.uint64)
        for a in arrays:
            np.add(total, masking.encode_fixed_point(a), out=total)
        return masking.decode_fixed_point(total)


def simulation_keys(names: list[str], seed: int) -> dict[str, KeyAgreementKey]:
    """Deterministic X25519 keys for an in-process run. Never for real nodes."""
    return {
        n: KeyAgreementKey(hashlib.sha256(f"accord-simulation:{seed}:{n}".encode()).digest())
        for n in names
    }


class MaskedSum:
    """Each node masks its matrix (:func:`~accord.crypto.masking.mask_embedding`), the
    coordinator sums and decodes (:func:`~accord.crypto.masking.aggregate`).

    In a simulation both halves run here; over a network the first half runs in each node.
    Round ids come from :func:`~accord.crypto.masking.derive_round_id` over ``run_id``, the
    round number and the node set, so every (round, purpose) masks one matrix per node.
    """

    def __init__(self, keys: Mapping[str, KeyAgreementKey], run_id: bytes) -> None:
        self.keys = dict(keys)
        self.publics = {n: k.public_key for n, k in self.keys.items()}
        self.run_id = run_id
        self.matrices_masked = 0

    def aggregate(
        self, round_no: int, purpose: str, parts: Mapping[str, Float32Array]
    ) -> FloatArray:
        names = sorted(parts)
        missing = [n for n in names if n not in self.keys]
        if missing:
            raise InvalidInput(f"no key-agreement key for node(s) {', '.join(missing)}")
        round_id = masking.derive_round_id(self.run_id, round_no, 0, names)
        masked = []
        for name in names:
            peers = {p: self.publics[p] for p in names if p != name}
            masked.append(
                masking.mask_embedding(
                    name, self.keys[name], peers, round_id, parts[name], purpose=purpose
                )
            )
            self.matrices_masked += 1
        return masking.aggregate(masked, names, expected_round_id=round_id)


# --- in-process simulation ----------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """A feature node's data in a simulation.

    ``features`` are its preprocessed rows; ``local_row[i]`` is the row of aligned customer
    ``i`` in ``features``, or −1 where the node does not hold that customer.
    """

    name: str
    features: Float32Array
    local_row: IntArray

    def __post_init__(self) -> None:
        if self.local_row.ndim != 1 or (
            self.local_row.size and self.local_row.max() >= self.features.shape[0]
        ):
            raise InvalidInput(f"party {self.name!r}: local_row points outside its features")

    @property
    def available(self) -> BoolArray:
        out: BoolArray = self.local_row >= 0
        return out


def availability(parties: Sequence[Party]) -> BoolArray:
    """``n_aligned × n_parties``: who holds each aligned customer."""
    sizes = {p.local_row.size for p in parties}
    if len(sizes) != 1:
        raise InvalidInput("every party's local_row must cover the same aligned rows")
    return np.stack([p.available for p in parties], axis=1)


@dataclass
class ExchangeLog:
    """What the protocol cost: exchanges, bytes each way (wire estimate), wall time."""

    rounds: int = 0
    """Training exchanges (embed + gradient)."""
    forward_rounds: int = 0
    """Scoring exchanges (embed only)."""
    bytes_up: int = 0
    """Masked ``uint64`` embeddings, nodes → coordinator."""
    bytes_down: int = 0
    """``float32`` gradients, coordinator → nodes (each node only at its own positions)."""
    seconds: float = 0.0
    excluded_rows: int = 0
    """Training rows never used because fewer than ``k`` nodes hold them."""
    round_seconds: list[float] = field(default_factory=list)

    @property
    def bytes_sent(self) -> int:
        return self.bytes_up + self.bytes_down


@dataclass
class SplitTraining:
    """The result of :func:`train_split`: every party's trainer and the cost of getting there."""

    config: SplitConfig
    nodes: list[NodeTrainer]
    top: TopTrainer
    log: ExchangeLog

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]


def _embed_round(
    plan: RoundPlan,
    parties: Sequence[Party],
    nodes: Sequence[NodeTrainer],
    aggregator: Aggregator,
    purpose: str,
    log: ExchangeLog,
) -> tuple[FloatArray, dict[int, tuple[IntArray, IntArray]]]:
    """Steps 1–2 and the sum: ask each participating node for its positions, aggregate.

    Returns the sum and, per participating node, its (positions, local rows).
    """
    parts: dict[str, Float32Array] = {}
    asked: dict[int, tuple[IntArray, IntArray]] = {}
    for i in plan.participants():
        party, node = parties[i], nodes[i]
        pos = plan.positions(i)
        local = party.local_row[plan.rows[pos]]
        if (local < 0).any():
            raise InvalidInput(f"round plan asks {party.name!r} for customers it does not hold")
        parts[party.name] = scatter_rows(node.forward(local), pos, plan.n_rows)
        asked[i] = (pos, local)
    log.bytes_up += len(parts) * plan.n_rows * nodes[0].embedding_dim * EMBED_BYTES_PER_VALUE
    return aggregator.aggregate(plan.round_no, purpose, parts), asked


def run_round(
    plan: RoundPlan,
    parties: Sequence[Party],
    nodes: Sequence[NodeTrainer],
    top: TopTrainer,
    labels: npt.ArrayLike,
    aggregator: Aggregator,
    log: ExchangeLog,
) -> None:
    """One training exchange, exactly as the network runs it (module notes, steps 2–4)."""
    y = np.asarray(labels)
    started = time.perf_counter()
    total, asked = _embed_round(plan, parties, nodes, aggregator, TRAIN_PURPOSE, log)
    grad = top.step(total, y[plan.rows], plan.sources, plan.round_no)
    for i, (pos, local) in asked.items():
        nodes[i].backward(local, grad[pos], plan.round_no)
        log.bytes_down += pos.size * grad.shape[1] * GRAD_BYTES_PER_VALUE
    log.rounds += 1
    log.round_seconds.append(time.perf_counter() - started)


def party_seed(seed: int, index: int) -> int:
    """The weight-initialisation seed of party ``index`` (the top model is index ``n``)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def train_split(
    parties: Sequence[Party],
    labels: npt.ArrayLike,
    train_rows: npt.ArrayLike,
    config: SplitConfig,
    *,
    aggregator: Aggregator | None = None,
    seed: int = 0,
) -> SplitTraining:
    """Federated training in one process: ``config.rounds`` exchanges through ``aggregator``.

    ``labels`` holds one 0/1 outcome per aligned row (the label node's table); only
    ``train_rows`` are used, and of those only rows held by at least ``k`` parties.
    """
    if len(parties) < config.min_contributors:
        raise TooFewSources(
            f"{len(parties)} feature node(s) cannot give sums over {config.min_contributors}"
        )
    agg = aggregator if aggregator is not None else FixedPointSum()
    started = time.perf_counter()
    planner = RoundPlanner(availability(parties), train_rows, config, seed=seed)
    nodes = [
        NodeTrainer(p.name, p.features, config, seed=party_seed(seed, i))
        for i, p in enumerate(parties)
    ]
    top = TopTrainer(len(parties), config, seed=party_seed(seed, len(parties)))
    log = ExchangeLog(excluded_rows=planner.excluded)
    for r in range(config.rounds):
        run_round(planner.plan(r), parties, nodes, top, labels, agg, log)
    log.seconds = time.perf_counter() - started
    return SplitTraining(config, nodes, top, log)


@dataclass(frozen=True)
class Scores:
    """The head's output per requested row (a logit, or a ZILN row of three); NaN where fewer
    than ``k`` nodes could contribute."""

    logits: FloatArray
    scored: BoolArray


def score_split(
    training: SplitTraining,
    parties: Sequence[Party],
    rows: npt.ArrayLike,
    *,
    aggregator: Aggregator | None = None,
    round_no: int | None = None,
    use: Sequence[str] | None = None,
) -> Scores:
    """One forward-only exchange over ``rows`` with every node that holds each row.

    ``use`` limits the nodes (e.g. to the consented ones, or to simulate a node being down);
    the others contribute nothing. Rows left with fewer than ``k`` contributors get no score.
    """
    agg = aggregator if aggregator is not None else FixedPointSum()
    avail = availability(parties)
    if use is not None:
        unknown = set(use) - set(training.names)
        if unknown:
            raise InvalidInput(f"unknown node(s) {', '.join(sorted(unknown))}")
        avail = avail & np.array([n in use for n in training.names])[None, :]
    number = (
        round_no if round_no is not None else training.config.rounds + training.log.forward_rounds
    )
    plan, scorable = plan_scoring(avail, rows, round_no=number, k=training.config.min_contributors)
    width = HEAD_OUTPUTS[training.config.head]
    logits = np.full(scorable.size if width == 1 else (scorable.size, width), np.nan)
    if plan.n_rows:
        total, _ = _embed_round(plan, parties, training.nodes, agg, SCORE_PURPOSE, training.log)
        logits[scorable] = training.top.logits(total, plan.sources)
        training.log.forward_rounds += 1
    return Scores(logits, scorable)


# --- the centralized baseline: the same architecture on the joined data -------------------


class JointModel(nn.Module):
    """Bottom models and top model in one graph (the joined data in one place)."""

    def __init__(self, n_features: Sequence[int], config: SplitConfig, *, seed: int) -> None:
        super().__init__()
        bottoms = []
        for i, f in enumerate(n_features):
            with _seeded(party_seed(seed, i)):
                bottoms.append(BottomModel(f, config))
        self.bottoms = nn.ModuleList(bottoms)
        with _seeded(party_seed(seed, len(n_features))):
            self.top = TopModel(len(n_features), config)

    def forward(self, xs: Sequence[torch.Tensor], sources: torch.Tensor) -> torch.Tensor:
        parts = [
            bottom(x) * sources[:, i : i + 1]
            for i, (bottom, x) in enumerate(zip(self.bottoms, xs, strict=True))
        ]
        out: torch.Tensor = self.top(torch.stack(parts).sum(dim=0), sources)
        return out


@dataclass
class CentralizedModel:
    """A :class:`JointModel` trained centrally, and how long that took."""

    config: SplitConfig
    model: JointModel
    names: list[str]
    seconds: float

    def logits(
        self, parties: Sequence[Party], rows: npt.ArrayLike, *, use: Sequence[str] | None = None
    ) -> FloatArray:
        avail = availability(parties)
        idx = _row_indices(rows, avail.shape[0], "rows to score")
        src = avail[idx]
        if use is not None:
            src = src & np.array([n in use for n in self.names])[None, :]
        xs = _joined(parties, idx)
        with torch.no_grad():
            out: FloatArray = (
                self.model(xs, torch.from_numpy(src.astype(np.float32))).numpy().astype(np.float64)
            )
        return out


def _joined(parties: Sequence[Party], rows: IntArray) -> list[torch.Tensor]:
    """Each party's features at ``rows`` (zeros where it lacks the customer)."""
    out = []
    for p in parties:
        local = p.local_row[rows]
        x = p.features[np.maximum(local, 0)].copy()
        x[local < 0] = 0.0
        out.append(torch.from_numpy(x))
    return out


def train_centralized(
    parties: Sequence[Party],
    labels: npt.ArrayLike,
    train_rows: npt.ArrayLike,
    config: SplitConfig,
    *,
    seed: int = 0,
) -> CentralizedModel:
    """The same networks trained jointly on the joined data: the P7 reference.

    Same initial weights as :func:`train_split` with the same seed, the same number of passes
    (``rounds × local_epochs`` epochs), minibatch size, learning-rate schedule and party
    dropout — but plain end-to-end backpropagation, no fixed point, and, having no P2 to
    respect, every training row any party holds (one party alone gives a single-channel model).
    """
    started = time.perf_counter()
    y_all = np.asarray(labels, dtype=np.float32)
    avail = availability(parties)
    rows = _row_indices(train_rows, avail.shape[0], "training rows")
    rows = rows[avail[rows].any(axis=1)]
    if rows.size == 0:
        raise InvalidInput("no training row is held by any party")
    model = JointModel([p.features.shape[1] for p in parties], config, seed=seed)
    optimizer = _adam(model, config)
    xs = _joined(parties, rows)
    av = avail[rows]
    y = torch.from_numpy(y_all[rows])
    keep = min(config.min_contributors, len(parties))
    rng = np.random.default_rng([seed, 5])
    model.top.start_from(y_all[rows].astype(np.float64))
    model.train()
    for epoch in range(config.rounds * config.local_epochs):
        _set_lr(optimizer, config.learning_rate_at(epoch // config.local_epochs))
        for mb in _minibatches(rows.size, config.batch_size, 1, rng):
            src = sample_sources(av[mb], rng, dropout=config.party_dropout, keep=keep)
            b = torch.from_numpy(mb)
            out = model([x[b] for x in xs], torch.from_numpy(src.astype(np.float32)))
            loss = head_loss(config.head, out, y[b])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    model.eval()
    return CentralizedModel(config, model, [p.name for p in parties], time.perf_counter() - started)


def train_single_channel(
    party: Party,
    labels: npt.ArrayLike,
    train_rows: npt.ArrayLike,
    config: SplitConfig,
    *,
    seed: int = 0,
) -> CentralizedModel:
    """One channel alone, same architecture and schedule: the "every single channel" of P7.

    Customers the channel lacks get the top model's answer for "no source" (about the base
    rate); score with ``model.logits([party], rows)``.
    """
    return train_centralized([party], labels, train_rows, config, seed=seed)


__all__ = [
    "EMBEDDING_BOUND",
    "HEAD_OUTPUTS",
    "MIN_CONTRIBUTORS",
    "SCORE_PURPOSE",
    "TRAIN_PURPOSE",
    "Aggregator",
    "BottomModel",
    "CentralizedModel",
    "ExchangeLog",
    "FixedPointSum",
    "Head",
    "JointModel",
    "MaskedSum",
    "NodeTrainer",
    "Party",
    "PlainSum",
    "RoundPlan",
    "RoundPlanner",
    "Scores",
    "SplitConfig",
    "SplitTraining",
    "TooFewSources",
    "TopModel",
    "TopTrainer",
    "availability",
    "check_labels",
    "head_loss",
    "party_seed",
    "plan_scoring",
    "run_round",
    "sample_sources",
    "scatter_rows",
    "score_split",
    "simulation_keys",
    "train_centralized",
    "train_single_channel",
    "train_split",
]
