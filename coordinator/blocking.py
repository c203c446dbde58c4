"""Network-wide stop: a customer who revokes at one channel stops being used at every node.

The revoking node names its own row keys of that customer; the coordinator finds the aligned
rows, marks them blocked (so nothing is scored for them) and tells every other node its own
row keys of the same rows, which each node's consent gate then refuses. Nodes that were down
catch up at start with ``GetBlockedRows``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import structlog
from sqlalchemy import Engine, bindparam, text

from accord.clock import Clock, system_clock
from accord.errors import InvalidInput
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.registry import RegistryView
from accord.rpc.client import describe_rpc_error
from accord.rpc.tls import PartyCredentials

log = structlog.get_logger(__name__)

MAX_KEYS = 1000
PUSH_TIMEOUT_S = 2.0

_ROWS_OF = text(
    "SELECT run_id, row_key FROM aligned_row WHERE node = :node AND node_row_key IN :keys"
).bindparams(bindparam("keys", expanding=True))
_KEYS_OF_ROW = text(
    "SELECT node, node_row_key FROM aligned_row WHERE run_id = :run AND row_key = :row"
)
_BLOCKED = text(
    "SELECT a.run_id, a.node_row_key FROM blocked_row b JOIN aligned_row a "
    "ON a.run_id = b.run_id AND a.row_key = b.row_key WHERE a.node = :node"
)


class RowBlocker:
    def __init__(
        self,
        engine: Engine,
        credentials: PartyCredentials,
        registry: Callable[[], RegistryView],
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self.credentials = credentials
        self.registry = registry
        self._clock = clock

    def block(self, node: str, row_keys: list[bytes]) -> tuple[int, list[str]]:
        if not 1 <= len(row_keys) <= MAX_KEYS or any(len(k) != 16 for k in row_keys):
            raise InvalidInput(f"send 1 to {MAX_KEYS} row keys of 16 bytes each")
        now = int(self._clock())
        per_node: dict[str, dict[str, list[bytes]]] = {}
        with self.engine.begin() as conn:
            rows = conn.execute(_ROWS_OF, {"node": node, "keys": row_keys}).all()
            for run_id, row_key in rows:
                exists = conn.execute(
                    text("SELECT 1 FROM blocked_row WHERE run_id = :r AND row_key = :k"),
                    {"r": run_id, "k": row_key},
                ).first()
                if exists is None:
                    conn.execute(
                        text(
                            "INSERT INTO blocked_row (run_id, row_key, at, by_node) "
                            "VALUES (:r, :k, :at, :n)"
                        ),
                        {"r": run_id, "k": row_key, "at": now, "n": node},
                    )
                for other, key in conn.execute(_KEYS_OF_ROW, {"run": run_id, "row": row_key}).all():
                    if other != node:
                        per_node.setdefault(other, {}).setdefault(run_id, []).append(bytes(key))
        endpoints = {n.channel: n.endpoint for n in self.registry().nodes}

        def push(target: str) -> str | None:
            request = alignment_pb2.BlockRowsRequest(
                runs=[
                    alignment_pb2.BlockedRows(run_id=r, row_keys=k)
                    for r, k in per_node[target].items()
                ]
            )
            try:
                with self.credentials.channel(endpoints[target], target) as ch:
                    alignment_pb2_grpc.NodeAlignmentStub(ch).BlockRows(
                        request, timeout=PUSH_TIMEOUT_S
                    )
                return target
            except (grpc.RpcError, KeyError) as err:
                reason = (
                    describe_rpc_error(err, target)
                    if isinstance(err, grpc.RpcError)
                    else "not registered"
                )
                log.warning(
                    "block not delivered; the node catches up when it starts",
                    node=target,
                    reason=reason,
                )
                return None

        with ThreadPoolExecutor(max_workers=max(1, len(per_node))) as pool:
            notified = [n for n in pool.map(push, sorted(per_node)) if n is not None]
        return len(rows), notified

    def blocked_for(self, node: str) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        with self.engine.connect() as conn:
            for run_id, key in conn.execute(_BLOCKED, {"node": node}).all():
                out.setdefault(run_id, []).append(bytes(key))
        return out
