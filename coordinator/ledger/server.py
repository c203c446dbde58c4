"""gRPC servicer for accord.v1.Ledger: decode, call :class:`Ledger`, encode."""

from __future__ import annotations

import grpc

from accord.coordinator.ledger.log import Ledger
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.registry import reject_unknown_fields
from accord.rpc.tls import peer_party


class LedgerServicer(ledger_pb2_grpc.LedgerServicer):
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def Append(
        self, request: ledger_pb2.AppendRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.AppendResponse:
        reject_unknown_fields(request, "request")
        appended = self._ledger.append(list(request.entries), appended_by=peer_party(context))
        return ledger_pb2.AppendResponse(
            appended=[
                ledger_pb2.AppendedEntry(index=a.index, leaf_hash=a.leaf_hash) for a in appended
            ]
        )

    def GetCheckpoint(
        self, request: ledger_pb2.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.SignedCheckpoint:
        return ledger_pb2.SignedCheckpoint(note=self._ledger.checkpoint().note)

    def GetInclusionProof(
        self, request: ledger_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.InclusionProof:
        reject_unknown_fields(request, "request")
        size, leaf, proof = self._ledger.inclusion_proof(request.index, request.tree_size)
        return ledger_pb2.InclusionProof(
            index=request.index, tree_size=size, leaf_hash=leaf, hashes=proof
        )

    def GetConsistencyProof(
        self, request: ledger_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ConsistencyProof:
        reject_unknown_fields(request, "request")
        size2, proof = self._ledger.consistency_proof(request.size1, request.size2)
        return ledger_pb2.ConsistencyProof(size1=request.size1, size2=size2, hashes=proof)

    def GetEntries(
        self, request: ledger_pb2.GetEntriesRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetEntriesResponse:
        reject_unknown_fields(request, "request")
        return ledger_pb2.GetEntriesResponse(
            entries=[
                ledger_pb2.LedgerEntry(
                    index=e.index,
                    data=e.data,
                    leaf_hash=e.leaf_hash,
                    appended_at=e.appended_at,
                    appended_by=e.appended_by,
                )
                for e in self._ledger.entries(request.start, request.count)
            ]
        )

    def ProveExtends(
        self, request: ledger_pb2.ProveExtendsRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ProveExtendsResponse:
        reject_unknown_fields(request, "request")
        proven = self._ledger.prove_extends(request.old_checkpoint)
        return ledger_pb2.ProveExtendsResponse(
            checkpoint=ledger_pb2.SignedCheckpoint(note=proven.checkpoint.note),
            proof=ledger_pb2.ConsistencyProof(
                size1=proven.size1, size2=proven.checkpoint.size, hashes=proven.proof
            ),
        )

    def GetConsentStatus(
        self, request: ledger_pb2.GetConsentStatusRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.ConsentStatusProof:
        reject_unknown_fields(request, "request")
        found = self._ledger.consent_status(request.consent)
        return ledger_pb2.ConsentStatusProof(
            checkpoint=ledger_pb2.SignedCheckpoint(note=found.checkpoint.note),
            consent=found.consent,
            status_json=found.status.encode().decode() if found.status else "",
            siblings=found.proof.siblings,
            terminal_key=found.proof.terminal_key or b"",
            terminal_value_hash=found.proof.terminal_value_hash or b"",
        )


def add_ledger(server: grpc.Server, ledger: Ledger) -> str:
    ledger_pb2_grpc.add_LedgerServicer_to_server(LedgerServicer(ledger), server)
    name: str = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name
    return name
