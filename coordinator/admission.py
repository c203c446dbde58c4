"""The coordinator admits only the parties the operator listed: party, role and certificate.

The operator-signed membership list lives in the coordinator's folder (``members.json``); the
operator replaces it when it admits or removes a party, and the coordinator picks the new
version up on the next call (a newer file is verified first; a file that does not verify, or
an older version, is refused and the last good list stays in force).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import structlog

from accord.crypto.errors import CryptoError
from accord.crypto.membership import Membership
from accord.errors import ConfigError, NotPermitted
from accord.pki_layout import load_membership
from accord.rpc.authorization import PeerIdentity

log = structlog.get_logger(__name__)


class MembershipGate:
    def __init__(self, path: Path, ca_cert_pem: bytes) -> None:
        self._path = path
        self._ca = ca_cert_pem
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._membership = self._load()

    @property
    def membership(self) -> Membership:
        self._refresh()
        return self._membership

    def _load(self) -> Membership:
        try:
            stat = os.stat(self._path)
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{self._path} is missing: the coordinator admits only the parties of the "
                "operator's signed membership list (`accord pki sign` writes it)"
            ) from exc
        membership = load_membership(self._path, self._ca)
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        return membership

    def _refresh(self) -> None:
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            return  # keep the list in force; a vanished file admits nobody new
        if (stat.st_mtime_ns, stat.st_size) == self._stamp:
            return
        with self._lock:
            try:
                fresh = load_membership(self._path, self._ca)
            except (CryptoError, ConfigError) as exc:
                log.warning("membership list refused; the previous one stays", reason=str(exc))
                self._stamp = (stat.st_mtime_ns, stat.st_size)
                return
            if fresh.version < self._membership.version:
                log.warning(
                    "membership list rolled back; the newer one stays",
                    offered=fresh.version,
                    kept=self._membership.version,
                )
            else:
                self._membership = fresh
            self._stamp = (stat.st_mtime_ns, stat.st_size)

    def admit(self, peer: PeerIdentity) -> None:
        """Raise NotPermitted unless the operator listed this party, role and certificate."""
        membership = self.membership
        member = membership.member(peer.party)
        if member is None:
            raise NotPermitted(
                f"{peer.party!r} is not a member of {membership.network} (membership list "
                f"version {membership.version}); ask the network's operator to admit it"
            )
        if member.role != peer.role:
            raise NotPermitted(
                f"{peer.party!r} is admitted as {member.role}, but its certificate says "
                f"{peer.role}; the operator signs one certificate per party and role"
            )
        if member.fingerprint != peer.fingerprint:
            raise NotPermitted(
                f"this certificate of {peer.party!r} is not the one the membership list "
                f"(version {membership.version}) admits; use the certificate the operator signed "
                "last, or ask the operator to list this one"
            )
