"""gRPC servicer for accord.v1.NodeService: decode, call :class:`Node`, encode."""

from __future__ import annotations

import grpc
import numpy as np

from accord.errors import InvalidInput, NotPermitted, NotReady
from accord.node.alignment import NodeAlignment
from accord.node.alignment_server import NodeAlignmentServicer, add_node_alignment
from accord.node.consent_server import ConsentServicer, add_consent
from accord.node.gate import ConsentGate
from accord.node.own_spend import OwnSpend
from accord.node.scoring_server import NodeScoringServicer, add_node_scoring
from accord.node.service import Node
from accord.node.witness import Witness
from accord.node.witness_server import add_witness
from accord.proto.v1 import common_pb2, node_pb2, node_pb2_grpc, registry_pb2
from accord.registry import FEATURE_TYPE_BY_NAME, ROLE_BY_NAME, reject_unknown_fields
from accord.rpc.server import Registrar
from accord.rpc.tls import peer_party


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(
        self,
        node: Node,
        gate: ConsentGate | None = None,
        alignment: NodeAlignment | None = None,
        own_spend: OwnSpend | None = None,
    ) -> None:
        self._node = node
        self._gate = gate
        self._alignment = alignment
        self._own_spend = own_spend

    def OwnSpendSum(
        self, request: node_pb2.OwnSpendSumRequest, context: grpc.ServicerContext
    ) -> node_pb2.OwnSpendSumResponse:
        reject_unknown_fields(request, "request")
        caller = peer_party(context)
        if caller != self._node.coordinator_party:
            raise NotPermitted(f"only the coordinator asks for a group sum; {caller!r} may not")
        if self._own_spend is None or self._node.role != "feature":
            raise NotReady("this node keeps no own spend model: only channel nodes do")
        done = self._own_spend.group_sum(
            request.model, request.alignment_run, list(request.row_keys), request.horizon_days
        )
        return node_pb2.OwnSpendSumResponse(
            estimate_sum=done.total,
            customers=done.customers,
            left_out=done.left_out,
            fitted_on=done.fitted_on,
        )

    def Compute(
        self, request: node_pb2.ComputeRequest, context: grpc.ServicerContext
    ) -> node_pb2.ComputeResponse:
        reject_unknown_fields(request, "request")
        caller = peer_party(context)
        if caller != self._node.coordinator_party:
            raise NotPermitted(f"only the coordinator asks for computations; {caller!r} may not")
        if self._gate is None or self._alignment is None:
            raise NotReady("this node computes nothing yet")
        local_ref = self._alignment.local_ref(request.run_id, request.row_key)
        rows = self._gate.require(request.purpose, request.session, local_ref)
        known = int(np.count_nonzero(~np.isnan(rows.features[0])))
        return node_pb2.ComputeResponse(use_index=rows.use_indexes[0], known_columns=known)

    def Resolve(
        self, request: node_pb2.ResolveRequest, context: grpc.ServicerContext
    ) -> node_pb2.ResolveResponse:
        reject_unknown_fields(request, "request")
        caller = peer_party(context)
        if caller != self._node.coordinator_party:
            raise NotPermitted(f"only the coordinator resolves subjects; {caller!r} may not")
        if self._alignment is None:
            raise NotReady("this node holds no alignment")
        which = request.WhichOneof("subject")
        if which == "brand_ref":
            if self._node.role != "label":
                raise InvalidInput("brand references are resolved by the label node")
            local_ref = request.brand_ref
        elif which == "token":
            local_ref = self._alignment.resolve_token(request.token)
        else:
            raise InvalidInput("name the subject by brand_ref or token")
        return node_pb2.ResolveResponse(
            row_key=self._alignment.row_key_of(request.alignment_run, local_ref)
        )

    def IssueToken(
        self, request: node_pb2.IssueTokenRequest, context: grpc.ServicerContext
    ) -> node_pb2.IssueTokenResponse:
        reject_unknown_fields(request, "request")
        caller = peer_party(context)
        if caller != self._node.channel:
            raise NotPermitted(f"tokens are issued to {self._node.channel!r}'s own systems only")
        if self._alignment is None:
            raise NotReady("this node issues no tokens")
        token = self._alignment.issue_token(request.local_ref, request.ttl_seconds or 600)
        return node_pb2.IssueTokenResponse(token=token)

    def GetNodeInfo(
        self, request: node_pb2.GetNodeInfoRequest, context: grpc.ServicerContext
    ) -> node_pb2.NodeInfo:
        info = self._node.info()
        return node_pb2.NodeInfo(
            channel=info.channel,
            role=ROLE_BY_NAME[info.role],
            schema=[
                common_pb2.FeatureSpec(name=c.name, type=FEATURE_TYPE_BY_NAME[c.type])
                for c in info.schema
            ],
            customers=info.customers,
            registry_version=info.registry_version,
            registry_nodes=info.registry_nodes,
        )

    def UpdateRegistry(
        self, request: registry_pb2.SignedRegistry, context: grpc.ServicerContext
    ) -> node_pb2.UpdateRegistryResponse:
        reject_unknown_fields(request, "signed registry")
        version = self._node.accept_registry(request, sender=peer_party(context))
        return node_pb2.UpdateRegistryResponse(accepted_version=version)


def registrar(
    node: Node,
    consent: ConsentServicer,
    alignment: NodeAlignmentServicer,
    gate: ConsentGate | None = None,
    library: NodeAlignment | None = None,
    witness: Witness | None = None,
    scoring: NodeScoringServicer | None = None,
    own_spend: OwnSpend | None = None,
) -> Registrar:
    """Adds the node's services to a server (see :func:`accord.rpc.server.create_server`)."""

    def add(server: grpc.Server) -> list[str]:
        node_pb2_grpc.add_NodeServiceServicer_to_server(
            NodeServicer(node, gate, library, own_spend), server
        )
        names = [
            node_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name,
            add_consent(server, consent),
            add_node_alignment(server, alignment),
        ]
        if witness is not None:
            names.append(add_witness(server, witness))
        if scoring is not None:
            names.append(add_node_scoring(server, scoring))
        return names

    return add
