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
from schemas import gettext as _

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


def _key(rec: dict[str, object], member: str, origin: str, seq: int) -> Verifier:
    value = rec.get(member)
    rid = str(rec.get("id"))
    if not isinstance(value, str):
        raise IntegrityError(_("signing-key rotation {id} (entry {seq}) has no {member} (a "
                               "verifier key text)").format(id=rid, seq=seq, member=member))
    try:
        key = Verifier.from_text(value)
    except Exception as e:
        raise IntegrityError(_("signing-key rotation {id} (entry {seq}): {member} is not a "
                               "verifier key: {reason}").format(
            id=rid, seq=seq, member=member, reason=e)) from e
    if key.name != origin:
        raise IntegrityError(_("signing-key rotation {id} (entry {seq}): {member} is named "
                               "{name}, not the ledger's origin {origin}").format(
            id=rid, seq=seq, member=member, name=repr(key.name), origin=repr(origin)))
    return key


def key_chain(conn: Connection, anchor: Verifier, origin: str) -> KeyChain:
    """The ledger's signing keys as its rotation entries give them (each entry checked
    against its leaf), trusted through ``anchor``, which must be one of them.

    Raises :class:`IntegrityError` when a rotation entry is malformed, when a rotation
    does not retire the key before it, or when ``anchor`` is none of the ledger's keys.
    Whether the rotation checkpoints carry both signatures is checked by whoever reads
    the checkpoints (:func:`ledger._verify.check_ledger`, FORMAT.md §6.1).

    Its messages are in the reader's language: a caller that keeps one as data (a
    verification problem) calls it in English (``schemas.language("en")``)."""
    rotations: list[Rotation] = []
    for seq, rec in control_records(conn, "key"):
        if rec.get("action") != ROTATE_SIGNING:
            continue
        rid = str(rec.get("id"))
        if rec.get("type") != "control.key":
            raise IntegrityError(_("signing-key rotation {id} (entry {seq}) is indexed as "
                                   "control.key but its record is of type {type}").format(
                id=rid, seq=seq, type=repr(rec.get("type"))))
        old, new = _key(rec, "old_key", origin, seq), _key(rec, "new_key", origin, seq)
        if old.key_hash == new.key_hash:
            raise IntegrityError(_("signing-key rotation {id} (entry {seq}) retires a key for "
                                   "the same key ID").format(id=rid, seq=seq))
        if rotations and rotations[-1].new.to_text() != old.to_text():
            raise IntegrityError(_("signing-key rotation {id} (entry {seq}) retires {old}, not "
                                   "the key the rotation before it made ({made})").format(
                id=rid, seq=seq, old=old.to_text(), made=rotations[-1].new.to_text()))
        rotations.append(Rotation(seq, rid, old, new))
    keys = ((rotations[0].old, *(r.new for r in rotations)) if rotations else (anchor,))
    if anchor.to_text() not in {k.to_text() for k in keys}:
        raise IntegrityError(
            _("the verifier key {key} is none of this ledger's signing keys (current: "
              "{current})").format(key=anchor.to_text(), current=keys[-1].to_text()))
    return KeyChain(keys, tuple(rotations))


__all__ = ["ROTATE_SIGNING", "KeyChain", "Rotation", "key_chain"]
