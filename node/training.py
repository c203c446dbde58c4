"""A node's side of federated training: its bottom model over its own aligned customers.

Transport-agnostic: Flower's ClientApp (:mod:`accord.node.flower_client`) and in-process tests
call the same :class:`TrainingParticipant`. Every message names rows by this node's own row
keys; the node maps them to its customers, passes its consent gate for every batch (purpose
model-training), computes, and masks what leaves with pairwise masks agreed with the other
nodes of the round (keys from the signed registry), so the coordinator learns only sums.

State lives in the node's own store after every message (the Deployment Engine starts a new
process per message), and the finished bottom model is kept there for scoring.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from accord.crypto import masking
from accord.crypto.keys import KeyAgreementKey
from accord.crypto.round_plan import bind_round_plan, check_round_plan
from accord.errors import Conflict, InvalidInput, NotFound, NotPermitted
from accord.schema import ColumnType
from accord.scoring.preprocess import Preprocessor, fit_preprocessor
from accord.scoring.split_model import BottomModel, NodeTrainer, SplitConfig

PURPOSE = "model-training"
from accord.rowkeys import ROW_KEY_BYTES  # noqa: E402


@dataclass(frozen=True)
class NodeRows:
    """A node's consented aligned customers for one run: keys, raw columns, their types."""

    row_keys: list[bytes]
    values: npt.NDArray[np.float64]
    columns: dict[str, ColumnType]


class TrainingData(Protocol):
    """Where a participant's rows come from: the node's store through its gate, or a test."""

    def rows(self, training_run: str, alignment_run: str) -> NodeRows: ...

    def withdrawn(
        self, training_run: str, alignment_run: str, row_keys: Sequence[bytes]
    ) -> list[bytes]:
        """Of ``row_keys``, those whose consent no longer covers training (checked now)."""
        ...


class StateStore(Protocol):
    def save(self, training_run: str, state: bytes) -> None: ...

    def load(self, training_run: str) -> bytes | None: ...

    def keep_model(self, model_id: str, training_run: str, state: bytes) -> None: ...

    def claim_round(self, training_run: str, round_id: bytes) -> None:
        """Record that this node answers ``round_id``; :class:`Conflict` if it already did."""
        ...


class Withdrawn(Exception):
    """Rows whose consent lapsed since the round was planned: the round must be redone."""

    def __init__(self, row_keys: list[bytes]) -> None:
        super().__init__(f"{len(row_keys)} customers withdrew consent for training")
        self.row_keys = row_keys


class TrainingParticipant:
    def __init__(
        self,
        channel: str,
        data: TrainingData,
        store: StateStore,
        kx_key: KeyAgreementKey,
        peers: Mapping[str, bytes],
        *,
        min_contributors: int = masking.MIN_NODES,
    ) -> None:
        """``peers``: every node's X25519 public key (from the verified registry);
        ``min_contributors``: this node's ``k``, the fewest contributors a row it fills may have."""
        self.channel = channel
        self.min_contributors = min_contributors
        self.data = data
        self.store = store
        self.kx_key = kx_key
        self.peers = dict(peers)
        # The last state this process saved or loaded per run, reused while the store still
        # holds exactly it (a new process per message, as on the Deployment Engine, rebuilds).
        self._cache: dict[
            str, tuple[bytes, tuple[str, Preprocessor, list[bytes], NodeTrainer]]
        ] = {}

    # -- state --------------------------------------------------------------------------
    def _save(
        self,
        run: str,
        alignment_run: str,
        pre: Preprocessor,
        keys: list[bytes],
        trainer: NodeTrainer,
    ) -> None:
        header = json.dumps(
            {
                "alignment_run": alignment_run,
                "preprocessor": pre.to_dict(),
                "config": trainer.config.to_dict(),
                "seed": trainer.seed,
            }
        ).encode()
        blob = (
            len(header).to_bytes(4, "big") + header + len(keys).to_bytes(4, "big") + b"".join(keys)
        )
        state = blob + trainer.to_bytes()
        self.store.save(run, state)
        self._cache[run] = (state, (alignment_run, pre, keys, trainer))

    def _load(self, run: str) -> tuple[str, Preprocessor, list[bytes], NodeTrainer]:
        blob = self.store.load(run)
        if blob is None:
            raise NotFound(f"training run {run!r} was not started at {self.channel!r}")
        cached = self._cache.get(run)
        if cached is not None and cached[0] == blob:  # the stored state is what we hold
            return cached[1]
        loaded = self._restore(run, blob)
        self._cache[run] = (blob, loaded)
        return loaded

    def _restore(self, run: str, blob: bytes) -> tuple[str, Preprocessor, list[bytes], NodeTrainer]:
        header, keys, state = parse_state(blob)
        pre = Preprocessor.from_dict(header["preprocessor"])
        rows = self.data.rows(run, str(header["alignment_run"]))
        index = {k: i for i, k in enumerate(rows.row_keys)}
        features = pre.transform(rows.values[[index[k] for k in keys]])
        config = SplitConfig.from_dict(header["config"])  # type: ignore[arg-type]
        trainer = NodeTrainer(self.channel, features, config, seed=int(header["seed"]))  # type: ignore[call-overload]
        trainer.restore(state)
        return str(header["alignment_run"]), pre, keys, trainer

    # -- the exchange -------------------------------------------------------------------
    def start(self, run: str, alignment_run: str, config: SplitConfig, seed: int) -> list[bytes]:
        """Enter the run: fit preprocessing on own rows, build the bottom model; return keys."""
        rows = self.data.rows(run, alignment_run)
        if not rows.row_keys:
            raise NotPermitted(f"{self.channel!r} has no consented aligned customers for training")
        pre = fit_preprocessor(rows.columns, rows.values)
        trainer = NodeTrainer(self.channel, pre.transform(rows.values), config, seed=seed)
        self._save(run, alignment_run, pre, rows.row_keys, trainer)
        return rows.row_keys

    def embed(
        self,
        run: str,
        round_id: bytes,
        purpose: str,
        plan: Mapping[str, npt.ArrayLike],
        n_rows: int,
        row_keys: Sequence[bytes],
    ) -> masking.MaskedEmbedding:
        """This node's masked matrix for one round: its rows at its positions, zeros elsewhere.

        ``plan`` is every participant's positions. The node answers only a plan in which each
        row it fills has at least ``k`` contributors, answers each round id once, and masks
        under the round id bound to the whole plan, so a coordinator that tells two nodes
        different plans, or asks twice, gets noise or a refusal (:mod:`accord.crypto.round_plan`).
        """
        alignment_run, _, keys, trainer = self._load(run)
        pos = check_round_plan(self.channel, n_rows, plan, k=self.min_contributors)
        if pos.size != len(row_keys):
            raise InvalidInput("the round must name one row key per position this node fills")
        withdrawn = self.data.withdrawn(run, alignment_run, row_keys)
        if withdrawn:
            raise Withdrawn(withdrawn)
        index = {k: i for i, k in enumerate(keys)}
        try:
            local = np.array([index[k] for k in row_keys], dtype=np.int64)
        except KeyError as exc:
            raise InvalidInput(
                "the round names a row this node did not enter into the run"
            ) from exc
        unknown = sorted(p for p in plan if p != self.channel and p not in self.peers)
        if unknown:
            # no key the node's own certificate signed: a swapped or unsigned registry entry
            raise NotPermitted(
                f"no verified exchange key for {', '.join(unknown)} in the registry "
                f"{self.channel!r} accepted: refusing to mask this round"
            )
        bound = bind_round_plan(round_id, purpose, n_rows, plan)
        self.store.claim_round(run, round_id)
        matrix = np.zeros((n_rows, trainer.embedding_dim), dtype=np.float32)
        if local.size:
            matrix[pos] = trainer.forward(local)
        others = {p: self.peers[p] for p in plan if p != self.channel}
        return masking.mask_embedding(
            self.channel, self.kx_key, others, bound, matrix, purpose=purpose
        )

    def backprop(
        self, run: str, round_no: int, row_keys: Sequence[bytes], grad: npt.ArrayLike
    ) -> float:
        alignment_run, pre, keys, trainer = self._load(run)
        index = {k: i for i, k in enumerate(keys)}
        try:
            local = np.array([index[k] for k in row_keys], dtype=np.int64)
        except KeyError as exc:
            raise InvalidInput("the gradient names a row this node did not enter") from exc
        delta = trainer.backward(local, grad, round_no)
        self._save(run, alignment_run, pre, keys, trainer)
        return delta

    def finish(self, run: str, model_id: str) -> None:
        """Keep the trained bottom model (and its preprocessing) for scoring."""
        blob = self.store.load(run)
        if blob is None:
            raise NotFound(f"training run {run!r} was not started at {self.channel!r}")
        self.store.keep_model(model_id, run, blob)


# --- the node's own store ------------------------------------------------------------------


class SqlStateStore:
    """Training state and kept models in the node's database (training_state, bottom_model)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, training_run: str, state: bytes) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM training_state WHERE run_id = :r"), {"r": training_run})
            conn.execute(
                text("INSERT INTO training_state (run_id, state) VALUES (:r, :s)"),
                {"r": training_run, "s": state},
            )

    def load(self, training_run: str) -> bytes | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                text("SELECT state FROM training_state WHERE run_id = :r"), {"r": training_run}
            ).scalar()
        return None if value is None else bytes(value)

    def keep_model(self, model_id: str, training_run: str, state: bytes) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text("INSERT INTO bottom_model (model_id, run_id, state) VALUES (:m, :r, :s)"),
                {"m": model_id, "r": training_run, "s": state},
            )

    def claim_round(self, training_run: str, round_id: bytes) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    text("INSERT INTO answered_round (round_id, run_id) VALUES (:i, :r)"),
                    {"i": round_id, "r": training_run},
                )
        except IntegrityError as exc:
            raise Conflict(
                "this node already answered that training round; a round is answered once "
                "(redo it under a new attempt)"
            ) from exc


class GatedStoreData:
    """Rows from the node's store, through its consent gate (one data-use event per run)."""

    def __init__(self, engine: Engine, gate: object) -> None:
        from accord.node.gate import ConsentGate

        assert isinstance(gate, ConsentGate)
        self.engine = engine
        self.gate = gate

    def _aligned(self, alignment_run: str) -> dict[str, bytes]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT local_ref, row_key FROM alignment_row WHERE run_id = :r"),
                {"r": alignment_run},
            ).all()
        return {str(ref): bytes(key) for ref, key in rows}

    def rows(self, training_run: str, alignment_run: str) -> NodeRows:
        by_ref = self._aligned(alignment_run)
        if not by_ref:
            raise NotFound(f"alignment run {alignment_run!r} is unknown here or matched nobody")
        consented = self.gate.open(PURPOSE, training_run, sorted(by_ref))
        with self.engine.connect() as conn:
            types: dict[str, ColumnType] = {
                str(n): t
                for n, t in conn.execute(
                    text("SELECT name, type FROM schema_column ORDER BY position")
                )
            }
        return NodeRows(
            [by_ref[r] for r in consented.refs],
            consented.features,
            {c: types[c] for c in consented.columns},
        )

    def withdrawn(
        self, training_run: str, alignment_run: str, row_keys: Sequence[bytes]
    ) -> list[bytes]:
        by_key = {k: r for r, k in self._aligned(alignment_run).items()}
        refs = [by_key[k] for k in row_keys if k in by_key]
        permitted = self.gate.permits(PURPOSE, refs)
        return [k for k in row_keys if by_key.get(k) not in permitted]


@dataclass(frozen=True)
class KeptModel:
    """A finished bottom model as scoring uses it."""

    alignment_run: str
    preprocessor: Preprocessor
    model: BottomModel

    def embed(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        x = torch.from_numpy(np.ascontiguousarray(self.preprocessor.transform(values)))
        with torch.no_grad():
            out: npt.NDArray[np.float32] = self.model(x).numpy()
        return out


def parse_state(blob: bytes) -> tuple[dict[str, object], list[bytes], bytes]:
    """(header, row keys, trainer state) of a saved participant state."""
    size = int.from_bytes(blob[:4], "big")
    header = json.loads(blob[4 : 4 + size])
    offset = 4 + size
    count = int.from_bytes(blob[offset : offset + 4], "big")
    offset += 4
    keys = [
        blob[offset + i * ROW_KEY_BYTES : offset + (i + 1) * ROW_KEY_BYTES] for i in range(count)
    ]
    return header, keys, blob[offset + count * ROW_KEY_BYTES :]


def load_kept_model(engine: Engine, model_id: str) -> KeptModel:
    with engine.connect() as conn:
        blob = conn.execute(
            text("SELECT state FROM bottom_model WHERE model_id = :m"), {"m": model_id}
        ).scalar()
    if blob is None:
        raise NotFound(f"model {model_id!r} was not trained with this node")
    header, _, state = parse_state(bytes(blob))
    pre = Preprocessor.from_dict(header["preprocessor"])
    config = SplitConfig.from_dict(header["config"])  # type: ignore[arg-type]
    model = BottomModel(pre.n_features, config)
    weights = torch.load(io.BytesIO(state), weights_only=True)["model"]
    model.load_state_dict(weights)
    model.eval()
    return KeptModel(str(header["alignment_run"]), pre, model)
