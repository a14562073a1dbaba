"""Citizen identity numbers as outside lists write them (GB 11643-1999).

Lists from other departments write the same person's number in more than one way: a final
check character ``x`` in lower case, or the old 15-digit number of the first generation of
cards. :func:`normalise_id` turns each into the 18-character form the business system
sends, so that its pseudonym is the one the ledger's records carry.
"""

from __future__ import annotations

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"  # ISO 7064 MOD 11-2: the check character for sum mod 11


def check_character(first17: str) -> str:
    """The check character of the first 17 digits (GB 11643-1999 §5.2, ISO 7064 MOD 11-2)."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def normalise_id(text: str) -> str | None:
    """The 18-character form of a citizen identity number, or None when ``text`` is not
    one: surrounding spaces dropped; 17 digits and a digit or ``X`` (``x`` is made upper
    case); or 15 digits, widened to 18 by the century ``19`` after the region code and the
    check character computed. The check character of an 18-character number is kept as
    written, not verified: the business system's records are compared as they were sent."""
    s = text.strip()
    if len(s) == 18 and s[:17].isascii() and s[:17].isdigit() and (
            s[17].isdigit() or s[17] in "xX"):
        return s[:17] + s[17].upper()
    if len(s) == 15 and s.isascii() and s.isdigit():
        first17 = s[:6] + "19" + s[6:]
        return first17 + check_character(first17)
    return None


__all__ = ["check_character", "normalise_id"]
