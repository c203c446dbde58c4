"""What every Flower process a party starts shares (a node's SuperNode, the coordinator's
SuperLink, the one-machine deployment): its environment, a free port, a SuperNode's key."""

from __future__ import annotations

import socket
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.secrets import write_secret

AUTH_KEY_FILE = "flower-supernode.key"

FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    # The apps are installed with Accord: never `uv sync` them (torch would pull CUDA).
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "PYTHONUNBUFFERED": "1",
}


def supernode_auth_key(data_dir: Path) -> Path:
    """The node's SuperNode key (OpenSSH, P-384), made on first use; returns its public half."""
    private = data_dir / AUTH_KEY_FILE
    public = data_dir / f"{AUTH_KEY_FILE}.pub"
    if not private.exists():
        key = ec.generate_private_key(ec.SECP384R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        write_secret(private, pem.decode())
        public.unlink(missing_ok=True)
    if not public.exists():
        loaded = serialization.load_ssh_private_key(private.read_bytes(), None)
        public.write_bytes(
            loaded.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            + b"\n"
        )
    return public


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


__all__ = ["AUTH_KEY_FILE", "FLOWER_ENV", "free_port", "supernode_auth_key"]
