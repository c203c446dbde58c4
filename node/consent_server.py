"""gRPC servicer for accord.v1.Consent: the channel's own systems acting for its customers."""

from __future__ import annotations

import json

import grpc

from accord.clock import Clock, system_clock
from accord.crypto.keys import NoteVerifier
from accord.errors import InvalidInput, NotPermitted, NotReady
from accord.ledger_writer import LedgerWriter
from accord.node.consent import ConsentBook, ConsentGrant, ConsentReceipt, ConsentTerms
from accord.node.consent_credentials import CredentialIssuer
from accord.node.subject_export import export_subject
from accord.proto.v1 import consent_pb2, consent_pb2_grpc
from accord.registry import reject_unknown_fields
from accord.rpc.tls import peer_party

MAX_GRANTS = 1000


def terms_from_proto(t: consent_pb2.ConsentTerms) -> ConsentTerms:
    return ConsentTerms(
        controller=t.controller,
        purposes=tuple(t.purposes),
        data_categories=tuple(t.data_categories),
        recipients=tuple(t.recipients),
        processing=tuple(t.processing),
        legal_basis=t.legal_basis,
        jurisdiction=t.jurisdiction,
        notice_version=t.notice_version,
        collection_method=t.collection_method,
        given_at=t.given_at,
        expires_at=t.expires_at,
    )


def terms_to_proto(t: ConsentTerms) -> consent_pb2.ConsentTerms:
    return consent_pb2.ConsentTerms(
        controller=t.controller,
        purposes=t.purposes,
        data_categories=t.data_categories,
        recipients=t.recipients,
        processing=t.processing,
        legal_basis=t.legal_basis,
        jurisdiction=t.jurisdiction,
        notice_version=t.notice_version,
        collection_method=t.collection_method,
        given_at=t.given_at,
        expires_at=t.expires_at,
    )


def _receipt(r: ConsentReceipt) -> consent_pb2.ConsentReceipt:
    receipt = consent_pb2.ConsentReceipt(
        record_id=r.record_id,
        local_ref=r.local_ref,
        status=r.status,
        consent_commitment=r.consent_commitment,
        ledger_pending=r.ledger_pending,
    )
    if r.ledger_index is not None:
        receipt.ledger_index = r.ledger_index
    return receipt


def _ref(local_ref: str) -> str:
    if not 1 <= len(local_ref) <= 128:
        raise InvalidInput("local_ref must be 1-128 characters")
    return local_ref


class ConsentServicer(consent_pb2_grpc.ConsentServicer):
    def __init__(
        self,
        book: ConsentBook,
        ledger: LedgerWriter,
        coordinator_key: NoteVerifier,
        clock: Clock = system_clock,
        issuer: CredentialIssuer | None = None,
    ) -> None:
        self._issuer = issuer
        self._book = book
        self._ledger = ledger
        self._coordinator_key = coordinator_key
        self._clock = clock

    def _authorize(self, context: grpc.ServicerContext) -> None:
        caller = peer_party(context)
        if caller != self._book.channel:
            raise NotPermitted(
                f"consent is managed by {self._book.channel!r}'s own systems; {caller!r} may not"
            )

    def Grant(
        self, request: consent_pb2.GrantConsentRequest, context: grpc.ServicerContext
    ) -> consent_pb2.GrantConsentResponse:
        self._authorize(context)
        reject_unknown_fields(request, "request")
        if not 1 <= len(request.grants) <= MAX_GRANTS:
            raise InvalidInput(f"send between 1 and {MAX_GRANTS} grants per request")
        grants = []
        for i, g in enumerate(request.grants):
            try:
                grants.append(ConsentGrant(_ref(g.local_ref), terms_from_proto(g.terms)))
            except InvalidInput as exc:
                raise InvalidInput(f"grants[{i}]: {exc}") from exc
        receipts = self._book.grant(grants)
        return consent_pb2.GrantConsentResponse(receipts=[_receipt(r) for r in receipts])

    def Revoke(
        self, request: consent_pb2.RevokeConsentRequest, context: grpc.ServicerContext
    ) -> consent_pb2.RevokeConsentResponse:
        self._authorize(context)
        reject_unknown_fields(request, "request")
        record_ids = list(request.record_ids) or self._book.active_record_ids(
            _ref(request.local_ref)
        )
        receipts = self._book.revoke(record_ids)
        return consent_pb2.RevokeConsentResponse(receipts=[_receipt(r) for r in receipts])

    def Show(
        self, request: consent_pb2.SubjectRequest, context: grpc.ServicerContext
    ) -> consent_pb2.ShowConsentResponse:
        self._authorize(context)
        reject_unknown_fields(request, "request")
        records = self._book.records(_ref(request.local_ref))
        return consent_pb2.ShowConsentResponse(
            records_json=json.dumps([r.to_json() for r in records])
        )

    def ExportSubject(
        self, request: consent_pb2.SubjectRequest, context: grpc.ServicerContext
    ) -> consent_pb2.ExportSubjectResponse:
        self._authorize(context)
        reject_unknown_fields(request, "request")
        doc = export_subject(
            self._book,
            self._ledger,
            self._coordinator_key,
            _ref(request.local_ref),
            int(self._clock()),
        )
        return consent_pb2.ExportSubjectResponse(export_json=json.dumps(doc, indent=2))

    def EraseSubject(
        self, request: consent_pb2.SubjectRequest, context: grpc.ServicerContext
    ) -> consent_pb2.EraseSubjectResponse:
        self._authorize(context)
        reject_unknown_fields(request, "request")
        counts = self._book.erase(_ref(request.local_ref))
        return consent_pb2.EraseSubjectResponse(**counts)

    def IssueCredential(
        self, request: consent_pb2.IssueCredentialRequest, context: grpc.ServicerContext
    ) -> consent_pb2.IssueCredentialResponse:
        self._authorize(context)
        reject_unknown_fields(request, "request")
        return _issue_credential(self._issuer, request)


MAX_COMMITMENT = 1024


def _issue_credential(
    issuer: CredentialIssuer | None, request: consent_pb2.IssueCredentialRequest
) -> consent_pb2.IssueCredentialResponse:
    if issuer is None:
        raise NotReady("this node issues no consent credentials")
    if not 0 < len(request.commitment) <= MAX_COMMITMENT:
        raise InvalidInput(
            "commitment: the wallet's commitment with its proof (accord wallet request)"
        )
    issued = issuer.issue(_ref(request.local_ref), bytes(request.commitment))
    return consent_pb2.IssueCredentialResponse(
        public_key=issued.public_key,
        signature=issued.signature,
        messages=issued.messages,
        expires_at=issued.expires_at,
    )


def add_consent(server: grpc.Server, servicer: ConsentServicer) -> str:
    consent_pb2_grpc.add_ConsentServicer_to_server(servicer, server)
    name: str = consent_pb2.DESCRIPTOR.services_by_name["Consent"].full_name
    return name
