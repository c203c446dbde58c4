"""`accord wallet`: a customer's consent credentials in a local file, as their app keeps them.

``request`` prints the commitment to send to a channel; ``accept`` keeps the credential the
channel returns (after checking it); ``present`` prints a one-use proof for a purpose, bound to
the request's nonce and audience; ``verify`` is the verifier's check of such a proof.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from accord.consent.credential import CredentialFields, Presentation, verify_presentation
from accord.errors import InvalidInput
from accord.wallet import holder, store

app = typer.Typer(
    help="A customer's consent credentials: request, accept, list, present.",
    no_args_is_help=True,
)
WALLET_OPT = typer.Option(..., "--wallet", help="The wallet file.")


def _hex(value: str, what: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be hex") from exc


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, not UTF-8
        raise InvalidInput(f"{path} is not {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} is not {what}")
    return data


def _print(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, sort_keys=True), flush=True)


@app.command("init")
def init(wallet: Path = WALLET_OPT) -> None:
    """Create a wallet with a fresh holder secret (never overwrites one)."""
    store.create(wallet)
    print(f"created {wallet}")


@app.command("request")
def request(
    wallet: Path = WALLET_OPT,
    channel: str = typer.Option(..., "--channel", help="The channel to ask."),
) -> None:
    """Print a credential request (a commitment to the holder secret) for a channel."""
    held = store.load(wallet)
    made = holder.request(held, channel)
    store.save(wallet, held)
    _print({"requestId": made.request_id, "channel": channel, "commitment": made.commitment.hex()})


@app.command("accept")
def accept(
    wallet: Path = WALLET_OPT,
    credential: Path = typer.Option(..., "--credential", help="The channel's JSON answer."),
) -> None:
    """Check an issued credential against the holder secret and keep it."""
    data = _read_json(credential, "an issued credential")
    try:
        request_id, key = str(data["requestId"]), _hex(str(data["publicKey"]), "publicKey")
        signature = _hex(str(data["signature"]), "signature")
        messages = [_hex(str(m), "a message") for m in data["messages"]]
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"{credential} lacks {exc}") from exc
    held = store.load(wallet)
    kept = holder.accept(held, request_id, key, signature, messages)
    store.save(wallet, held)
    print(f"kept the credential from {kept.channel}, valid until {kept.expires_at}")


@app.command("list")
def list_credentials(wallet: Path = WALLET_OPT) -> None:
    """The wallet's credentials and pending requests (never the secret)."""
    held = store.load(wallet)
    shown = []
    for c in held.credentials:
        fields = CredentialFields.from_messages([bytes.fromhex(m) for m in c.messages])
        shown.append(
            {"channel": c.channel, "expiresAt": c.expires_at, "purposes": list(fields.purposes)}
        )
    _print({"credentials": shown, "pending": sorted(held.pending)})


@app.command("present")
def present(
    wallet: Path = WALLET_OPT,
    channel: str = typer.Option(..., "--channel"),
    purpose: str = typer.Option(..., "--purpose"),
    nonce: str = typer.Option(..., "--nonce", help="The request's nonce (hex)."),
    audience: str = typer.Option(..., "--audience", help="Who the proof is shown to."),
) -> None:
    """Print a fresh, unlinkable proof for one use."""
    held = store.load(wallet)
    shown = holder.present(
        held, channel, purpose, _hex(nonce, "--nonce"), audience, int(time.time())
    )
    _print(shown.to_json())


@app.command("verify")
def verify(
    presentation: Path = typer.Option(..., "--presentation", help="A `present` output file."),
    public_key: str = typer.Option(..., "--public-key", help="The channel's BBS key (hex)."),
    channel: str = typer.Option(..., "--channel"),
    purpose: str = typer.Option(..., "--purpose"),
    nonce: str = typer.Option(..., "--nonce", help="The request's nonce (hex)."),
    audience: str = typer.Option(..., "--audience"),
) -> None:
    """The verifier's check: exits 0 only when the proof authorises this use."""
    shown = Presentation.from_json(_read_json(presentation, "a presentation"))
    verify_presentation(
        _hex(public_key, "--public-key"),
        shown,
        channel=channel,
        purpose=purpose,
        nonce=_hex(nonce, "--nonce"),
        audience=audience,
        now=int(time.time()),
    )
    print("ok")
