"""accord.crypto.note: C2SP signed notes and checkpoints, including hostile input."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.crypto import note
from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.keys import NoteSigner
from accord.crypto.merkle import EMPTY_ROOT
from accord.crypto.note import Checkpoint, Note, NoteSignature

REJECTED = (MalformedInput, VerificationError)
LOG = NoteSigner("example.org/ledger", bytes(range(32)))
WITNESS = NoteSigner("example.org/witness", bytes(range(1, 33)))
STRANGER = NoteSigner("example.org/stranger", bytes(range(2, 34)))
CHECKPOINT = Checkpoint("example.org/ledger", 42, bytes(range(32)))
SIGNED = note.sign_checkpoint(CHECKPOINT, [LOG])


def _sig_line(signer: NoteSigner, text: str, key_id: bytes | None = None) -> str:
    kid = signer.verifier.key_id if key_id is None else key_id
    return NoteSignature(signer.name, kid, signer.sign(text.encode())).line()


# --- signing and verifying -----------------------------------------------------------------


def test_sign_then_verify() -> None:
    signed = note.sign_note("hello\n\nworld\n", [LOG, WITNESS])
    verified = note.verify_note(signed, [LOG.verifier])
    assert verified.text == "hello\n\nworld\n"  # the last blank line splits text and signatures
    assert verified.verified_by == (LOG.verifier,)
    assert [s.name for s in verified.signatures] == [LOG.name, WITNESS.name]
    both = note.verify_note(signed.encode(), [WITNESS.verifier, LOG.verifier])
    assert set(both.verified_by) == {LOG.verifier, WITNESS.verifier}


def test_format_is_the_spec_format() -> None:
    signed = note.sign_note("text\n", [LOG])
    text, line = signed.split("\n\n")
    assert text == "text"
    assert line.startswith("\u2014 example.org/ledger ")
    blob = base64.b64decode(line.split(" ")[2])
    assert blob[:4] == LOG.verifier.key_id
    assert len(blob) == 4 + 64
    assert Note.parse(signed).encode() == signed


def test_unknown_keys_are_ignored_but_one_known_is_required() -> None:
    text = CHECKPOINT.to_text()
    extra = (
        _sig_line(STRANGER, text)
        + _sig_line(STRANGER, text, key_id=LOG.verifier.key_id)  # same id, other name
        + NoteSignature(LOG.name, b"\0\0\0\0", b"garbage").line()  # same name, other id
    )
    assert note.verify_checkpoint(SIGNED + extra, [LOG.verifier], origin=LOG.name) == CHECKPOINT
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        note.verify_note(SIGNED, [WITNESS.verifier])


def test_a_bad_signature_by_a_known_key_rejects_the_note() -> None:
    text = CHECKPOINT.to_text()
    forged = NoteSignature(WITNESS.name, WITNESS.verifier.key_id, WITNESS.sign(b"other\n"))
    with pytest.raises(VerificationError, match=r"signature by example\.org/witness"):
        note.verify_note(SIGNED + forged.line(), [LOG.verifier, WITNESS.verifier])
    short = NoteSignature(LOG.name, LOG.verifier.key_id, b"x" * 63)
    with pytest.raises(VerificationError, match="63 bytes"):
        note.verify_note(text + "\n" + short.line(), [LOG.verifier])


def test_verifier_set_must_be_usable() -> None:
    with pytest.raises(MalformedInput):
        note.verify_note(SIGNED, [])
    impostor = type(LOG.verifier)(LOG.name, WITNESS.verifier.public_key)
    assert impostor.key_id != LOG.verifier.key_id  # different key, different id: no clash
    note.verify_note(SIGNED, [LOG.verifier, LOG.verifier, impostor])


def test_accepts_at_least_sixteen_signatures() -> None:
    text = "many\n"
    signers = [NoteSigner(f"example.org/w{i}", bytes([i]) * 32) for i in range(16)]
    signed = note.sign_note(text, signers)
    assert len(note.verify_note(signed, [signers[7].verifier]).signatures) == 16


def test_limits() -> None:
    lines = _sig_line(STRANGER, "t\n") * (note.MAX_SIGNATURES + 1)
    with pytest.raises(MalformedInput, match="at most 100"):
        note.verify_note("t\n\n" + _sig_line(LOG, "t\n") + lines, [LOG.verifier])
    huge = "a" * note.MAX_NOTE_BYTES + "\n"
    with pytest.raises(MalformedInput, match="bytes"):
        note.verify_note(huge + "\n" + _sig_line(LOG, huge), [LOG.verifier])
    with pytest.raises(MalformedInput):
        note.sign_note(huge, [LOG])


@pytest.mark.parametrize(
    "text",
    ["no newline", "", "tab\there\n", "cr\r\n", "nul\x00\n", "esc\x1b\n", "bad \ud800\n"],
)
def test_sign_rejects_bad_text(text: str) -> None:
    with pytest.raises(MalformedInput):
        note.sign_note(text, [LOG])


def test_sign_needs_a_signer() -> None:
    with pytest.raises(MalformedInput):
        note.sign_note("t\n", [])


def _noncanonical(blob: str) -> str:
    """The same bytes with a padding bit set: decoders that do not check accept it."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = blob.rstrip("=")
    last = alphabet[alphabet.index(body[-1]) ^ 1]
    return body[:-1] + last + "=" * (len(blob) - len(body))


SIG = _sig_line(LOG, "t\n")
BLOB = SIG.split(" ")[2].rstrip("\n")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"t\n",
        b"t\n\n",
        b"t\n" + SIG.encode(),  # no blank line
        ("t\n\n" + SIG).encode()[:-1],  # no final newline
        ("t\n\n" + SIG + "\n").encode(),  # empty signature line
        ("t\n\n" + SIG.replace("\u2014", "-")).encode(),
        ("t\n\n" + SIG.replace(" ", "  ", 1)).encode(),  # empty key name
        f"t\n\n\u2014 {LOG.name}\n".encode(),
        f"t\n\n\u2014 {LOG.name} \n".encode(),
        f"t\n\n\u2014 {LOG.name} {BLOB[:-2]}\n".encode(),  # bad padding
        f"t\n\n\u2014 {LOG.name} {_noncanonical(BLOB)}\n".encode(),
        f"t\n\n\u2014 {LOG.name} {BLOB} x\n".encode(),
        f"t\n\n\u2014 {LOG.name} AAAAAA==\n".encode(),  # 4 bytes: key id and no signature
        f"t\n\n\u2014 a+b {BLOB}\n".encode(),
        b"t\xff\n\n" + SIG.encode(),  # not UTF-8
        b"t\r\n\n" + SIG.encode(),
        b"t\x00\n\n" + SIG.encode(),
    ],
)
def test_malformed_notes(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        note.verify_note(data, [LOG.verifier])


def test_noncanonical_base64_decodes_to_the_same_bytes() -> None:
    # Why canonical encoding is enforced: otherwise one signature has several spellings.
    assert base64.b64decode(_noncanonical(BLOB)) == base64.b64decode(BLOB)
    assert _noncanonical(BLOB) != BLOB


def test_signed_text_is_exact() -> None:
    with pytest.raises(VerificationError):
        note.verify_note("t \n\n" + SIG, [LOG.verifier])
    note.verify_note("t\n\n" + SIG, [LOG.verifier])


# --- hostile input: nothing but MalformedInput or VerificationError ------------------------


@given(st.binary(max_size=400))
def test_random_bytes_are_rejected_cleanly(data: bytes) -> None:
    with pytest.raises(REJECTED):
        note.verify_checkpoint(data, [LOG.verifier], origin=LOG.name)


@given(st.text(max_size=300))
def test_random_text_is_rejected_cleanly(text: str) -> None:
    with pytest.raises(REJECTED):
        note.verify_checkpoint(text, [LOG.verifier], origin=LOG.name)


@given(st.integers(0, len(SIGNED.encode()) - 1))
def test_truncated_notes_are_rejected(cut: int) -> None:
    with pytest.raises(REJECTED):
        note.verify_checkpoint(SIGNED.encode()[:cut], [LOG.verifier], origin=LOG.name)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace"]),
            st.integers(0, 10_000),
            st.sampled_from(["\n", " ", "+", "=", "/", "A", "0", "\u2014", "\x00", "é", "\n\n"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_edited_notes_are_rejected(edits: list[tuple[str, int, str]]) -> None:
    text = SIGNED
    for op, pos, chunk in edits:
        pos %= len(text) + 1
        if op == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1 :]
        else:
            text = text[:pos] + chunk + text[pos + 1 :]
    if text == SIGNED:
        return
    with pytest.raises(REJECTED):
        note.verify_checkpoint(text, [LOG.verifier], origin=LOG.name)


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_round_trip() -> None:
    cp = Checkpoint("example.org/ledger", 0, EMPTY_ROOT, ("revocation-root abc", "x"))
    text = cp.to_text()
    assert text == (
        "example.org/ledger\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        "revocation-root abc\nx\n"
    )
    assert Checkpoint.from_text(text) == cp
    signed = note.sign_checkpoint(cp, [LOG])
    assert note.verify_checkpoint(signed, [LOG.verifier], origin=cp.origin) == cp


def test_checkpoint_origin_must_be_the_expected_log() -> None:
    other = note.sign_checkpoint(Checkpoint("example.org/other", 1, EMPTY_ROOT), [LOG])
    with pytest.raises(VerificationError, match=r"example\.org/other"):
        note.verify_checkpoint(other, [LOG.verifier], origin=LOG.name)


ROOT_B64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"o\n1\n{ROOT_B64}",  # no final newline
        "o\n1\n",
        f"\n1\n{ROOT_B64}\n",
        f"o\n01\n{ROOT_B64}\n",
        f"o\n+1\n{ROOT_B64}\n",
        f"o\n 1\n{ROOT_B64}\n",
        f"o\n1_0\n{ROOT_B64}\n",
        f"o\n\u0661\n{ROOT_B64}\n",  # Arabic-Indic digit one
        f"o\n-1\n{ROOT_B64}\n",
        f"o\n{2**64}\n{ROOT_B64}\n",
        f"o\n{'9' * 5000}\n{ROOT_B64}\n",
        f"o\n\n{ROOT_B64}\n",
        "o\n1\nAAAA\n",
        f"o\n1\n{base64.b64encode(bytes(33)).decode()}\n",
        f"o\n1\n{_noncanonical(ROOT_B64)}\n",
        f"o\n1\n{ROOT_B64}\n\n",  # empty extension line
        f"o\n1\n{ROOT_B64}\next\n\n",
    ],
)
def test_malformed_checkpoint_text(text: str) -> None:
    with pytest.raises(MalformedInput):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, bytes(32), ()),
        ("a\nb", 1, bytes(32), ()),
        ("o", -1, bytes(32), ()),
        ("o", 2**64, bytes(32), ()),
        ("o", 1, bytes(31), ()),
        ("o", 1, bytes(32), ("",)),
        ("o", 1, bytes(32), ("a\nb",)),
        ("o\t", 1, bytes(32), ()),
    ],
)
def test_checkpoint_fields_are_validated(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(MalformedInput):
        Checkpoint(origin, size, root, extensions)
