"""age (pyrage) as a backup sealing scheme: to X25519 recipients or a passphrase.

The plaintext of a part begins with a line naming the backup and the part
(``membank-backup/v1 <backup id> <part name>``), checked on opening, so a part
swapped for another decrypts but is refused. age parts are sealed and opened whole,
so each is held in memory once (bounded by the part size). age proves nothing about
who wrote a part (anyone with the recipient key or the passphrase can); the AES
scheme of :mod:`membank_server.archive.crypto` does, and MACs the manifest too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence

import pyrage

from membank_server.archive.crypto import CONTEXT, PartStream, corrupt_part
from membank_server.archive.manifest import Encryption
from membank_server.domain.errors import BackupKeyError

__all__ = ["AGE_SCHEME", "AgeCipher"]

AGE_SCHEME = "age"
_PROBE = CONTEXT + b" passphrase check"


class _Whole:
    """Gathers a whole part, then seals or opens it in one call (age has no streaming API
    for a passphrase, and a part is bounded by the part size)."""

    def __init__(self, done: Callable[[bytes], bytes]) -> None:
        self._buf = bytearray()
        self._done = done

    def update(self, data: bytes) -> bytes:
        self._buf += data
        return b""

    def finish(self) -> bytes:
        data = bytes(self._buf)
        self._buf.clear()
        return self._done(data)


class AgeCipher:
    """age (pyrage): seal to X25519 recipients or a passphrase; open with identities or it.

    Args:
        recipients: ``age1...`` public keys to seal to.
        identities: ``AGE-SECRET-KEY-1...`` secret keys to open with.
        passphrase: Seals and opens instead of keys (scrypt).
    """

    scheme = AGE_SCHEME
    suffix = ".age"

    def __init__(
        self,
        *,
        recipients: Sequence[str] = (),
        identities: Sequence[str] = (),
        passphrase: str | None = None,
    ) -> None:
        try:
            self._recipients = [pyrage.x25519.Recipient.from_str(r) for r in recipients]
            self._identities = [pyrage.x25519.Identity.from_str(i) for i in identities]
        except (pyrage.RecipientError, pyrage.IdentityError, ValueError) as exc:
            raise BackupKeyError(f"not a valid age key: {type(exc).__name__}") from None
        if passphrase is not None and (recipients or identities):
            raise BackupKeyError("give age recipients/identities or a passphrase, not both")
        self._passphrase = passphrase

    def describe(self) -> Encryption:
        if self._passphrase is not None:
            # A sealed known text: a wrong passphrase is told apart from a damaged part
            # before any part is read.
            probe = pyrage.passphrase.encrypt(_PROBE, self._passphrase)
            return Encryption(
                scheme=AGE_SCHEME,
                recipients=["scrypt"],
                check=base64.b64encode(bytes(probe)).decode("ascii"),
            )
        if not self._recipients:
            raise BackupKeyError("age needs at least one recipient (age1...) to seal to")
        return Encryption(scheme=AGE_SCHEME, recipients=sorted(str(r) for r in self._recipients))

    def check(self, info: Encryption, backup_id: str) -> None:
        if info.scheme != AGE_SCHEME:
            raise BackupKeyError(f"backup {backup_id} is sealed with {info.scheme}, not age")
        if info.recipients == ["scrypt"]:
            if self._passphrase is None:
                raise BackupKeyError(
                    f"backup {backup_id} is sealed with an age passphrase: give it"
                )
            try:
                opened = pyrage.passphrase.decrypt(
                    base64.b64decode(info.check or ""), self._passphrase
                )
            except (pyrage.DecryptError, binascii.Error, ValueError):
                opened = b""
            if bytes(opened) != _PROBE:
                raise BackupKeyError(
                    f"backup {backup_id} was sealed with another age passphrase",
                    {"backup": backup_id},
                )
            return
        if not set(info.recipients) & {str(i.to_public()) for i in self._identities}:
            raise BackupKeyError(
                f"backup {backup_id} was sealed to age recipients {info.recipients}; "
                "none of the identities given is one of them",
                {"backup": backup_id, "recipients": info.recipients},
            )

    @staticmethod
    def _label(backup_id: str, part: str) -> bytes:
        return b"%s %s %s\n" % (CONTEXT, backup_id.encode(), part.encode())

    def sealer(self, backup_id: str, part: str) -> PartStream:
        label = self._label(backup_id, part)

        def seal(data: bytes) -> bytes:
            if self._passphrase is not None:
                return bytes(pyrage.passphrase.encrypt(label + data, self._passphrase))
            return bytes(pyrage.encrypt(label + data, self._recipients))

        return _Whole(seal)

    def opener(self, backup_id: str, part: str) -> PartStream:
        label = self._label(backup_id, part)

        def open_(data: bytes) -> bytes:
            try:
                if self._passphrase is not None:
                    plain = bytes(pyrage.passphrase.decrypt(data, self._passphrase))
                else:
                    plain = bytes(pyrage.decrypt(data, self._identities))
            except pyrage.DecryptError as exc:
                raise corrupt_part(backup_id, part, f"cannot be opened with age: {exc}") from None
            if not plain.startswith(label):
                raise corrupt_part(backup_id, part, "is sealed for another part or backup")
            return plain[len(label) :]

        return _Whole(open_)

    def mac(self, data: bytes) -> str | None:
        return None
