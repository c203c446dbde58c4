"""Tell the network when a customer revokes here, and catch up on stops made while away."""

from __future__ import annotations

import grpc
import structlog

from accord.errors import InvalidInput, Unavailable
from accord.node.alignment import NodeAlignment
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.rpc.client import describe_rpc_error, rpc_code
from accord.rpc.tls import PartyCredentials

log = structlog.get_logger(__name__)

TIMEOUT_S = 5.0
BATCH = 1000


class NetworkStop:
    def __init__(
        self, alignment: NodeAlignment, credentials: PartyCredentials, coordinator: str
    ) -> None:
        self._alignment = alignment
        self._credentials = credentials
        self._coordinator = coordinator

    def block(self, row_keys: list[bytes]) -> None:
        """Ask the coordinator to stop every node using these rows (this node's row keys).

        Called by the node's outbox, which retries until it succeeds; Block is idempotent.
        """
        try:
            with self._credentials.channel(self._coordinator, COORDINATOR) as ch:
                stub = alignment_pb2_grpc.AlignmentStub(ch)
                for start in range(0, len(row_keys), BATCH):
                    stub.Block(
                        alignment_pb2.BlockRequest(row_keys=row_keys[start : start + BATCH]),
                        timeout=TIMEOUT_S,
                    )
        except grpc.RpcError as err:
            message = describe_rpc_error(err, "coordinator")
            if rpc_code(err) == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidInput(message) from err
            raise Unavailable(message) from err

    def catch_up(self) -> None:
        try:
            with self._credentials.channel(self._coordinator, COORDINATOR) as ch:
                reply = alignment_pb2_grpc.AlignmentStub(ch).GetBlockedRows(
                    alignment_pb2.BlockedRowsRequest(), timeout=TIMEOUT_S
                )
        except grpc.RpcError as err:
            log.warning(
                "could not fetch network stops", reason=describe_rpc_error(err, "coordinator")
            )
            return
        runs = {r.run_id: list(r.row_keys) for r in reply.runs}
        if runs:
            self._alignment.block_rows(runs)
