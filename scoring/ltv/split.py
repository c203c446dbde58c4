"""Split learning for LTV: per-channel bottom models, a summed embedding, a top model and a
ZILN head.

The parties and what crosses between them:

- a :class:`ChannelParty` (a channel node) holds its own feature matrix and bottom model.
  ``forward(rows) -> embedding`` returns one embedding per aligned row (zeros for customers the
  channel does not hold); ``backward(rows, grad)`` takes the gradient of the loss with respect
  to the *sum* of embeddings for the same rows and updates the bottom model;
- the :class:`TopParty` (the coordinator, holding the label node's spends by row key) only
  ever receives the sum of embeddings over the parties taking part, and the names of those
  parties; ``step(rows, summed, contributors)`` runs the top model and the ZILN loss, updates
  the top model and returns ``(loss, grad)``, the gradient with respect to that sum, which is
  the same for every contributing party.

Rows are integer positions in the aligned row space (``0..n_rows-1``, the coordinator's row
keys); each party maps them to its own rows. Everything at the seam is a numpy array, so the
exchange can travel as messages (masked embeddings summed by the aggregator, see DESIGN.md
flow 4) without touching this module.

:func:`train_split` trains with random party dropout: for each batch every party is left out
with probability ``party_dropout`` (at least one stays), so the top model learns to serve any
subset of channels, and a left-out party neither computes nor updates on that batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from accord.errors import InvalidInput
from accord.scoring.ziln import ZilnParams, params_from_output, ziln_loss

__all__ = [
    "FEW_EXCHANGES",
    "BottomModel",
    "ChannelParty",
    "SplitConfig",
    "TopModel",
    "TopParty",
    "TrainingHistory",
    "learning_rate_at",
    "node_features",
    "predict_split",
    "summed_embedding",
    "torch_threads",
    "train_split",
]


@dataclass(frozen=True)
class SplitConfig:
    """Sizes and training settings shared by the parties of one run."""

    embedding_dim: int = 16
    bottom_hidden: int = 32
    top_hidden: int = 32
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    party_dropout: float = 0.2
    final_rate_share: float = 0.3
    average_last: int = 10  # average the weights of the last epochs (0: keep the last weights)
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.embedding_dim, self.bottom_hidden, self.top_hidden, self.batch_size) < 1:
            raise InvalidInput("layer sizes and the batch size must be positive")
        if self.epochs < 0:
            raise InvalidInput("the number of epochs cannot be negative")
        if not 0.0 <= self.party_dropout < 1.0:
            raise InvalidInput("party dropout is a probability below 1")
        if not 0.0 < self.final_rate_share <= 1.0 or self.average_last < 0:
            raise InvalidInput("the final rate share lies in (0, 1]; average_last is not negative")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch limited to ``threads`` intra-op threads (``None``: unchanged).

    These networks are small: one thread is fastest, and it stays fast when other processes
    share the cores (two spinning threads slow down several-fold under contention).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# For a deployment where each exchange is a round trip through Flower's Deployment Engine
# (seconds each, DESIGN.md): 10 batches per epoch on CDNOW, 300 exchanges instead of 2,220, at
# a small cost in calibration (cross-validated on CDNOW: same Gini, decile MAPE ~16 % vs ~13 %).
FEW_EXCHANGES = SplitConfig(batch_size=2048, learning_rate=1e-2)


def node_features(values: np.ndarray) -> np.ndarray:
    """What a node feeds its bottom model: ``sign(x) * log1p(|x|)``, standardised with the
    node's own mean and standard deviation (no other party's statistics are needed)."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 2:
        raise InvalidInput("node features must be a 2-D matrix")
    if not np.isfinite(x).all():
        raise InvalidInput("node features must be finite (impute missing values first)")
    x = np.sign(x) * np.log1p(np.abs(x))
    if len(x) == 0:
        return np.asarray(x, dtype=np.float32)
    std = x.std(axis=0)
    return np.asarray((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0), dtype=np.float32)


class BottomModel(nn.Module):
    """A channel's MLP: its features -> an embedding (last layer linear, so sums mix freely)."""

    def __init__(self, in_dim: int, hidden: int, embedding_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, embedding_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class TopModel(nn.Module):
    """The coordinator's MLP: summed embedding and which parties contributed to it -> ZILN
    output ``(logit, mu, raw sigma)``."""

    def __init__(self, embedding_dim: int, n_parties: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embedding_dim + n_parties, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 3),
        )

    def forward(self, summed: torch.Tensor, contributors: torch.Tensor) -> torch.Tensor:
        flags = contributors.to(summed.dtype).expand(summed.shape[0], -1)
        out: torch.Tensor = self.net(torch.cat([summed, flags], dim=1))
        return out


M = TypeVar("M", bound=nn.Module)


def _seeded(seed: int, build: Callable[[], M]) -> M:
    """Build a module with its initial weights drawn from ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class _WeightAverage:
    """A running mean of a module's parameters (stochastic weight averaging, per party)."""

    def __init__(self, module: nn.Module) -> None:
        self._module = module
        self._sums: list[torch.Tensor] = []
        self.count = 0

    def add(self) -> None:
        params = [p.detach() for p in self._module.parameters()]
        if not self._sums:
            self._sums = [p.clone() for p in params]
        else:
            for total, p in zip(self._sums, params, strict=True):
                total.add_(p)
        self.count += 1

    def apply(self) -> None:
        """Load the mean into the module and start a new average."""
        if self.count == 0:
            return
        with torch.no_grad():
            for p, total in zip(self._module.parameters(), self._sums, strict=True):
                p.copy_(total / self.count)
        self._sums, self.count = [], 0


@dataclass
class _Pending:
    rows: np.ndarray
    local: np.ndarray  # positions in the batch this party holds
    output: torch.Tensor


class ChannelParty:
    """A node's side of split learning: its features, its bottom model, its optimiser.

    ``features`` holds the node's own (already prepared) rows; ``row_of_local[i]`` is the
    aligned row of local row ``i``. The node never reveals which rows it holds beyond
    returning zeros for the others (in deployment the zeros are masked like any embedding).
    """

    def __init__(
        self,
        name: str,
        features: np.ndarray,
        row_of_local: np.ndarray,
        n_rows: int,
        config: SplitConfig,
        seed: int,
    ) -> None:
        features = np.asarray(features, dtype=np.float32)
        row_of_local = np.asarray(row_of_local, dtype=np.int64)
        if features.ndim != 2 or len(features) != len(row_of_local):
            raise InvalidInput(f"{name}: one aligned row per feature row is needed")
        if len(row_of_local) and (row_of_local.min() < 0 or row_of_local.max() >= n_rows):
            raise InvalidInput(f"{name}: aligned rows must lie in 0..{n_rows - 1}")
        if len(np.unique(row_of_local)) != len(row_of_local):
            raise InvalidInput(f"{name}: an aligned row appears twice")
        self.name = name
        self.embedding_dim = config.embedding_dim
        self._features = torch.from_numpy(features)
        self._local_of_row = np.full(n_rows, -1, dtype=np.int64)
        self._local_of_row[row_of_local] = np.arange(len(row_of_local))
        in_dim = features.shape[1]
        self.model = _seeded(
            seed, lambda: BottomModel(in_dim, config.bottom_hidden, config.embedding_dim)
        )
        self._optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self._average = _WeightAverage(self.model)
        self._pending: _Pending | None = None

    def set_learning_rate(self, rate: float) -> None:
        for group in self._optimizer.param_groups:
            group["lr"] = rate

    def add_to_average(self) -> None:
        """Fold the current weights into the running average (end of an epoch)."""
        self._average.add()

    def use_average(self) -> None:
        """Replace the weights with their running average."""
        self._average.apply()

    @property
    def n_local(self) -> int:
        return len(self._features)

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or (
            len(rows) and (rows.min() < 0 or rows.max() >= len(self._local_of_row))
        ):
            raise InvalidInput(f"{self.name}: rows must be aligned row numbers")
        return rows

    def _embed(self, rows: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        local = self._local_of_row[rows]
        present = np.flatnonzero(local >= 0)
        return present, self.model(self._features[torch.from_numpy(local[present])])

    def forward(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings for ``rows`` (zeros where this node lacks the customer); remembers the
        computation for the matching :meth:`backward`."""
        rows = self._rows(rows)
        self.model.train()
        present, output = self._embed(rows)
        self._pending = _Pending(rows, present, output)
        embedding = np.zeros((len(rows), self.embedding_dim), dtype=np.float32)
        embedding[present] = output.detach().numpy()
        return embedding

    def backward(self, rows: np.ndarray, grad: np.ndarray) -> None:
        """Apply ``grad`` (d loss / d summed embedding for ``rows``) to the bottom model.

        Uses the computation kept by the matching :meth:`forward`, or recomputes it (same
        weights, same result) when the party kept none, e.g. in a fresh process per message.
        """
        rows = self._rows(rows)
        grad = np.asarray(grad, dtype=np.float32)
        if grad.shape != (len(rows), self.embedding_dim) or not np.isfinite(grad).all():
            raise InvalidInput(
                f"{self.name}: expected a finite gradient of shape "
                f"{(len(rows), self.embedding_dim)}, got {grad.shape}"
            )
        pending = self._pending
        self._pending = None
        if pending is None or not np.array_equal(pending.rows, rows):
            self.model.train()
            present, output = self._embed(rows)
            pending = _Pending(rows, present, output)
        if len(pending.local) == 0:
            return
        self._optimizer.zero_grad()
        torch.autograd.backward(pending.output, torch.from_numpy(grad[pending.local]))
        self._optimizer.step()

    def embed(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings for scoring: no training state is kept."""
        rows = self._rows(rows)
        self.model.eval()
        embedding = np.zeros((len(rows), self.embedding_dim), dtype=np.float32)
        with torch.no_grad():
            present, output = self._embed(rows)
            embedding[present] = output.numpy()
        return embedding


class TopParty:
    """The coordinator's side: the top model, the ZILN loss and the labels by aligned row.

    Besides the summed embedding the top model sees which parties contributed to the sum (the
    coordinator knows who answered), so one model serves every subset of the parties.
    """

    def __init__(
        self, labels: np.ndarray, party_names: Sequence[str], config: SplitConfig, seed: int
    ) -> None:
        y = np.asarray(labels, dtype=np.float32)
        if y.ndim != 1 or not np.isfinite(y).all() or (y < 0).any():
            raise InvalidInput("LTV labels are finite, non-negative spends, one per row")
        if not party_names or len(set(party_names)) != len(party_names):
            raise InvalidInput("the top model needs distinct party names")
        self.party_names = list(party_names)
        self.embedding_dim = config.embedding_dim
        self._labels = torch.from_numpy(y)
        n_parties = len(self.party_names)
        self.model = _seeded(
            seed, lambda: TopModel(config.embedding_dim, n_parties, config.top_hidden)
        )
        self._init_bias(y)
        self._optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self._average = _WeightAverage(self.model)

    def _init_bias(self, y: np.ndarray) -> None:
        """Start from the population: the share of returning customers and their log spend."""
        positive = y[y > 0]
        rate = float(np.clip(len(positive) / max(len(y), 1), 1e-3, 1 - 1e-3))
        mu = float(np.log(positive).mean()) if len(positive) else 0.0
        sd = float(np.log(positive).std()) if len(positive) > 1 else 1.0
        last = self.model.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.bias.copy_(
                torch.tensor([np.log(rate / (1 - rate)), mu, np.log(np.expm1(max(sd, 0.1)))])
            )

    def set_learning_rate(self, rate: float) -> None:
        for group in self._optimizer.param_groups:
            group["lr"] = rate

    def add_to_average(self) -> None:
        self._average.add()

    def use_average(self) -> None:
        self._average.apply()

    def _flags(self, contributors: Sequence[str]) -> torch.Tensor:
        unknown = set(contributors) - set(self.party_names)
        if unknown or not contributors:
            raise InvalidInput(f"contributors must be known parties, got {sorted(contributors)}")
        flags = [1.0 if name in contributors else 0.0 for name in self.party_names]
        return torch.tensor([flags])

    def _summed(self, rows: np.ndarray, summed: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(summed, dtype=np.float32))
        if tensor.shape != (len(rows), self.embedding_dim):
            raise InvalidInput(f"summed embedding has shape {tuple(tensor.shape)}")
        return tensor

    def step(
        self, rows: np.ndarray, summed: np.ndarray, contributors: Sequence[str]
    ) -> tuple[float, np.ndarray]:
        """One update on ``rows`` given the sum of the ``contributors``' embeddings; returns
        the loss and d loss / d summed embedding, to be sent to every contributor."""
        rows = np.asarray(rows, dtype=np.int64)
        summed_t = self._summed(rows, summed).requires_grad_(True)
        self.model.train()
        self._optimizer.zero_grad()
        output = self.model(summed_t, self._flags(contributors))
        loss = ziln_loss(self._labels[torch.from_numpy(rows)], output)
        torch.autograd.backward(loss)
        self._optimizer.step()
        assert summed_t.grad is not None
        return float(loss.detach()), summed_t.grad.numpy()

    def output(self, summed: np.ndarray, contributors: Sequence[str]) -> torch.Tensor:
        """The raw ``(n, 3)`` ZILN output for a summed embedding (no gradient)."""
        self.model.eval()
        summed_t = self._summed(np.arange(len(summed)), summed)
        with torch.no_grad():
            out: torch.Tensor = self.model(summed_t, self._flags(contributors))
        return out

    def predict(self, summed: np.ndarray, contributors: Sequence[str]) -> ZilnParams:
        return params_from_output(self.output(summed, contributors))

    def loss(self, rows: np.ndarray, summed: np.ndarray, contributors: Sequence[str]) -> float:
        rows = np.asarray(rows, dtype=np.int64)
        output = self.output(summed, contributors)
        return float(ziln_loss(self._labels[torch.from_numpy(rows)], output))


class _Trainable(Protocol):
    def set_learning_rate(self, rate: float) -> None: ...
    def add_to_average(self) -> None: ...
    def use_average(self) -> None: ...


@dataclass
class TrainingHistory:
    """What a run did: losses per epoch, and how many embedding exchanges it took."""

    train_loss: list[float] = field(default_factory=list)
    exchanges: int = 0
    embedding_floats_sent: int = 0  # floats each way, summed over parties and batches


def learning_rate_at(epoch: int, config: SplitConfig) -> float:
    """Cosine decay from ``learning_rate`` to ``final_rate_share`` of it over the epochs."""
    if config.epochs <= 1:
        return config.learning_rate
    share = config.final_rate_share
    progress = epoch / (config.epochs - 1)
    return float(
        config.learning_rate * (share + (1 - share) * 0.5 * (1 + np.cos(np.pi * progress)))
    )


def _kept(n_parties: int, dropout: float, rng: np.random.Generator) -> np.ndarray:
    if dropout <= 0 or n_parties == 1:
        return np.arange(n_parties)
    keep = rng.random(n_parties) >= dropout
    if not keep.any():
        keep[rng.integers(n_parties)] = True
    return np.flatnonzero(keep)


def train_split(
    parties: Sequence[ChannelParty],
    top: TopParty,
    train_rows: np.ndarray,
    config: SplitConfig,
    rng: np.random.Generator,
) -> TrainingHistory:
    """Mini-batch split learning over ``train_rows`` with random party dropout."""
    if not parties:
        raise InvalidInput("split learning needs at least one party")
    rows = np.asarray(train_rows, dtype=np.int64)
    members: list[_Trainable] = [*parties, top]
    history = TrainingHistory()
    for epoch in range(config.epochs):
        rate = learning_rate_at(epoch, config)
        for member in members:
            member.set_learning_rate(rate)
        order = rng.permutation(rows)
        total, count = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            kept = [parties[i] for i in _kept(len(parties), config.party_dropout, rng)]
            summed = np.zeros((len(batch), config.embedding_dim), dtype=np.float32)
            for party in kept:
                summed += party.forward(batch)  # the coordinator sees only this sum
            loss, grad = top.step(batch, summed, [party.name for party in kept])
            for party in kept:
                party.backward(batch, grad)
            history.exchanges += 1
            history.embedding_floats_sent += 2 * summed.size * len(kept)
            total += loss * len(batch)
            count += len(batch)
        history.train_loss.append(total / max(count, 1))
        if epoch >= config.epochs - config.average_last:
            for member in members:
                member.add_to_average()
    if config.average_last > 0:
        for member in members:
            member.use_average()
    return history


def summed_embedding(parties: Sequence[ChannelParty], rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    summed = np.zeros((len(rows), parties[0].embedding_dim), dtype=np.float32)
    for party in parties:
        summed += party.embed(rows)
    return summed


def predict_split(parties: Sequence[ChannelParty], top: TopParty, rows: np.ndarray) -> ZilnParams:
    """Score ``rows`` with whichever parties are given (any subset serves)."""
    if not parties:
        raise InvalidInput("scoring needs at least one party")
    return top.predict(summed_embedding(parties, rows), [party.name for party in parties])
