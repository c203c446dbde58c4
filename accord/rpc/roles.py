"""Who may call what: one table of gRPC method -> the roles admitted to call it.

A caller's role is the one the network's CA bound into its certificate
(:func:`accord.crypto.pki.certificate_role`), never something the caller says. The table is
enforced by :class:`accord.rpc.authorization.AuthorizationInterceptor` on every server; a
method missing from it is refused, so a new RPC is closed until someone decides who may call
it. Handlers still check what the table cannot: that a caller is *this* node's own channel
(consent, tokens) or the coordinator this node trusts.
"""

from __future__ import annotations

from collections.abc import Mapping

COORDINATOR = "coordinator"
FEATURE = "feature"
LABEL = "label"
MARKETER = "marketer"
AUDITOR = "auditor"

NODES = frozenset({FEATURE, LABEL})
EVERYONE = frozenset({COORDINATOR, FEATURE, LABEL, MARKETER, AUDITOR})

# Services every admitted party may call on any server: health and schema reflection say
# nothing about customers.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")

ALLOWED_ROLES: Mapping[str, frozenset[str]] = {
    # --- the coordinator's services ---
    "/accord.v1.Registry/Register": NODES,
    "/accord.v1.Registry/GetRegistry": EVERYONE,
    # Appends: nodes record consents and uses, the coordinator records models and policies.
    "/accord.v1.Ledger/Append": NODES | {COORDINATOR},
    # Signed checkpoints and proofs verify themselves; anyone admitted may check them.
    "/accord.v1.Ledger/GetCheckpoint": EVERYONE,
    "/accord.v1.Ledger/GetInclusionProof": EVERYONE,
    "/accord.v1.Ledger/GetConsistencyProof": EVERYONE,
    "/accord.v1.Ledger/ProveExtends": EVERYONE,
    "/accord.v1.Ledger/GetConsentStatus": NODES | {COORDINATOR, AUDITOR},
    # Whole entries (which use touched which commitment) are the auditor's to read.
    "/accord.v1.Ledger/GetEntries": frozenset({AUDITOR, COORDINATOR}),
    # The brand (label node) starts alignments; the operator may too.
    "/accord.v1.Alignment/RunAlignment": frozenset({LABEL, COORDINATOR}),
    "/accord.v1.Alignment/Block": NODES,
    "/accord.v1.Alignment/GetBlockedRows": NODES,
    # A feature node's SuperNode joins the SuperLink under its own name; the operator trains.
    "/accord.v1.Training/JoinFleet": frozenset({FEATURE}),
    "/accord.v1.Training/Train": frozenset({COORDINATOR}),
    "/accord.v1.Scoring/Begin": frozenset({MARKETER}),
    "/accord.v1.Scoring/Score": frozenset({MARKETER}),
    "/accord.v1.Scoring/Probe": frozenset({MARKETER, COORDINATOR}),
    # --- a node's services ---
    "/accord.v1.NodeService/Resolve": frozenset({COORDINATOR}),
    "/accord.v1.NodeService/IssueToken": NODES,  # the handler admits the node's own channel
    "/accord.v1.NodeService/Compute": frozenset({COORDINATOR}),
    "/accord.v1.NodeService/GetNodeInfo": NODES | {COORDINATOR},
    "/accord.v1.NodeService/OwnSpendSum": frozenset({COORDINATOR}),
    "/accord.v1.NodeService/UpdateRegistry": frozenset({COORDINATOR}),
    # Consent is managed by the channel's own systems (the handler admits its own channel).
    "/accord.v1.Consent/Grant": NODES,
    "/accord.v1.Consent/Revoke": NODES,
    "/accord.v1.Consent/Show": NODES,
    "/accord.v1.Consent/ExportSubject": NODES,
    "/accord.v1.Consent/EraseSubject": NODES,
    "/accord.v1.Consent/IssueCredential": NODES,
    "/accord.v1.NodeAlignment/BlockRows": frozenset({COORDINATOR}),
    "/accord.v1.NodeAlignment/Prepare": frozenset({COORDINATOR}),
    "/accord.v1.NodeAlignment/AlignWith": frozenset({COORDINATOR}),
    "/accord.v1.NodeAlignment/Psi": NODES,  # node to node; the handler checks the registry
    "/accord.v1.NodeAlignment/Report": frozenset({COORDINATOR}),
    "/accord.v1.NodeAlignment/Labels": frozenset({COORDINATOR}),
    "/accord.v1.NodeAlignment/Finish": frozenset({COORDINATOR}),
    "/accord.v1.NodeScoring/Embed": frozenset({COORDINATOR}),
    "/accord.v1.Witness/GetLatest": frozenset({AUDITOR, COORDINATOR}),
    "/accord.v1.Witness/AddCheckpoint": frozenset({AUDITOR, COORDINATOR}),
}


def allowed_roles(method: str) -> frozenset[str]:
    """The roles admitted to ``method`` (a full name, ``/package.Service/Method``)."""
    service = method.lstrip("/").split("/", 1)[0]
    if service in OPEN_SERVICES:
        return EVERYONE
    return ALLOWED_ROLES.get(method, frozenset())
