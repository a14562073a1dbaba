"""The signing key's history (FORMAT.md §5.7): which key signs a checkpoint of a size.

``bfa key rotate --signing`` appends a ``control.key`` entry with ``action``
``"rotate-signing"`` naming the key it retires (``old_key``) and the one that signs from
then on (``new_key``), and in the same transaction signs the checkpoint that includes
that entry with *both* keys. The ledger's keys form a chain ``k0, k1, …``: ``k0`` is the
first rotation's ``old_key`` (the only key when there was none), ``k(i+1)`` the ``new_key``
of rotation ``i``, and each rotation's ``old_key`` must be the key before it.

A checkpoint of size ``n`` is signed by the key in force over its tree: ``k(i)`` with
``i`` the number of rotation entries below ``n``; the checkpoint of size ``s + 1`` over a
rotation entry at ``s`` is also signed by the key it retires. So any one key of the
chain that a verifier holds (the verifier key of a home, an auditor's copy) vouches for
the others: the rotation checkpoints tie each key to the next, each signed by a key the
verifier already trusts and covering the entry that names the other one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection

from ledger._control import control_records
from ledger._errors import IntegrityError
from ledger._note import Verifier

ROTATE_SIGNING = "rotate-signing"
"""``action`` of a signing-key rotation's ``control.key`` entry."""


@dataclass(frozen=True, slots=True)
class Rotation:
    """One signing-key rotation: the entry at ``seq`` retires ``old`` for ``new``."""

    seq: int
    record_id: str
    old: Verifier
    new: Verifier

    @property
    def uncosigned(self) -> str:
        """What is wrong when the checkpoint over this rotation is not stored."""
        return (f"signing-key rotation {self.record_id} (entry {self.seq}) has no checkpoint "
                f"of size {self.seq + 1} signed by the key it retires and the new one")


@dataclass(frozen=True, slots=True)
class KeyChain:
    """The ledger's signing keys in order, and the rotations between them."""

    keys: tuple[Verifier, ...]
    rotations: tuple[Rotation, ...]

    @property
    def current(self) -> Verifier:
        """The key that signs the next checkpoint."""
        return self.keys[-1]

    def epoch(self, size: int) -> int:
        """Index in :attr:`keys` of the key that signs a checkpoint of ``size``."""
        return bisect_left([r.seq for r in self.rotations], size)

    def signers(self, size: int) -> tuple[Verifier, ...]:
        """The keys that must all have signed a checkpoint of ``size``: the key in force,
        and for the checkpoint over a rotation entry also the key it retired."""
        i = self.epoch(size)
        if i > 0 and self.rotations[i - 1].seq == size - 1:
            return (self.keys[i - 1], self.keys[i])
        return (self.keys[i],)

    def uncosigned(self, sizes: Collection[int], *, cosigning: int | None = None
                   ) -> list[Rotation]:
        """The rotations without their co-signed checkpoint among the stored ``sizes``
        (``cosigning``: the one whose checkpoint the caller is signing now)."""
        return [r for r in self.rotations if r.seq + 1 not in sizes and r.seq != cosigning]

    def retired_at(self, key: Verifier) -> Rotation | None:
        """The rotation that retired ``key``, or None (the current key, or not a key of
        the chain)."""
        text = key.to_text()
        return next((r for r in self.rotations if r.old.to_text() == text), None)


def _key(rec: dict[str, object], member: str, origin: str, where: str) -> Verifier:
    value = rec.get(member)
    if not isinstance(value, str):
        raise IntegrityError(f"{where} has no {member} (a verifier key text)")
    try:
        key = Verifier.from_text(value)
    except Exception as e:
        raise IntegrityError(f"{where}: {member} is not a verifier key: {e}") from e
    if key.name != origin:
        raise IntegrityError(f"{where}: {member} is named {key.name!r}, not the ledger's "
                             f"origin {origin!r}")
    return key


def key_chain(conn: Connection, anchor: Verifier, origin: str) -> KeyChain:
    """The ledger's signing keys as its rotation entries give them (each entry checked
    against its leaf), trusted through ``anchor``, which must be one of them.

    Raises :class:`IntegrityError` when a rotation entry is malformed, when a rotation
    does not retire the key before it, or when ``anchor`` is none of the ledger's keys.
    Whether the rotation checkpoints carry both signatures is checked by whoever reads
    the checkpoints (:func:`ledger._verify.check_ledger`, FORMAT.md §6.1)."""
    rotations: list[Rotation] = []
    for seq, rec in control_records(conn, "key"):
        if rec.get("action") != ROTATE_SIGNING:
            continue
        where = f"signing-key rotation {rec.get('id')!s} (entry {seq})"
        if rec.get("type") != "control.key":
            raise IntegrityError(f"{where} is indexed as control.key but its record is of "
                                 f"type {rec.get('type')!r}")
        old, new = _key(rec, "old_key", origin, where), _key(rec, "new_key", origin, where)
        if old.key_hash == new.key_hash:
            raise IntegrityError(f"{where} retires a key for the same key ID")
        if rotations and rotations[-1].new.to_text() != old.to_text():
            raise IntegrityError(f"{where} retires {old.to_text()}, not the key the rotation "
                                 f"before it made ({rotations[-1].new.to_text()})")
        rotations.append(Rotation(seq, str(rec.get("id")), old, new))
    keys = ((rotations[0].old, *(r.new for r in rotations)) if rotations else (anchor,))
    if anchor.to_text() not in {k.to_text() for k in keys}:
        raise IntegrityError(
            f"the verifier key {anchor.to_text()} is none of this ledger's signing keys "
            f"(current: {keys[-1].to_text()})")
    return KeyChain(keys, tuple(rotations))


__all__ = ["ROTATE_SIGNING", "KeyChain", "Rotation", "key_chain"]
