"""gRPC servicers run by the coordinator: decode, call the library, encode."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from accord.coordinator.alignment import AlignmentOrchestrator
from accord.coordinator.alignment_server import AlignmentServicer, add_alignment
from accord.coordinator.blocking import RowBlocker
from accord.coordinator.ledger.log import Ledger
from accord.coordinator.ledger.server import add_ledger
from accord.coordinator.metrics import CoordinatorMetrics
from accord.coordinator.registry import NodeRegistry
from accord.coordinator.scoring import ScoringService
from accord.coordinator.scoring_server import add_scoring
from accord.coordinator.training_server import TrainingServicer, add_training
from accord.proto.v1 import registry_pb2, registry_pb2_grpc
from accord.registry import reject_unknown_fields, verify_registration
from accord.rpc.server import Registrar
from accord.rpc.tls import peer_certificate_pem, peer_party


class RegistryServicer(registry_pb2_grpc.RegistryServicer):
    def __init__(self, registry: NodeRegistry, on_change: Callable[[], None]) -> None:
        self._registry = registry
        self._on_change = on_change

    def Register(
        self, request: registry_pb2.RegisterRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RegisterResponse:
        descriptor = verify_registration(request)
        signed = self._registry.register(
            descriptor, peer=peer_party(context), peer_cert_pem=peer_certificate_pem(context)
        )
        self._on_change()
        return registry_pb2.RegisterResponse(registry=signed)

    def GetRegistry(
        self, request: registry_pb2.GetRegistryRequest, context: grpc.ServicerContext
    ) -> registry_pb2.SignedRegistry:
        reject_unknown_fields(request, "request")
        return self._registry.current()


def registrar(
    registry: NodeRegistry,
    ledger: Ledger,
    alignment: AlignmentOrchestrator,
    blocker: RowBlocker,
    on_change: Callable[[], None],
    scoring: ScoringService | None = None,
    metrics: CoordinatorMetrics | None = None,
    training: TrainingServicer | None = None,
) -> Registrar:
    """Adds every coordinator service to a server."""

    def add(server: grpc.Server) -> list[str]:
        registry_pb2_grpc.add_RegistryServicer_to_server(
            RegistryServicer(registry, on_change), server
        )
        return [
            registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name,
            add_ledger(server, ledger),
            add_alignment(server, AlignmentServicer(alignment, blocker, metrics)),
            *([add_scoring(server, scoring, metrics)] if scoring is not None else []),
            add_training(server, training or TrainingServicer(None)),
        ]

    return add
