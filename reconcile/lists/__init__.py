"""Outside lists: eligibility by data comparison (比对).

Civil affairs and public security send lists of people who died; ``bfa compare`` records
each list in the ledger as ``control.compare`` entries holding only pseudonyms and dates
(:mod:`reconcile.lists._compare`), and the reconciler and ``bfa precheck`` read them back
from the entries (:func:`death_list`, :func:`comparisons`).
"""

from reconcile.lists._compare import (
    COMPARE_KINDS,
    PAIRS_PER_ENTRY,
    Compared,
    Comparison,
    Death,
    compare_list,
    comparisons,
    death_list,
    deaths,
    read_list,
)
from reconcile.lists._ids import normalise_id

__all__ = [
    "COMPARE_KINDS",
    "PAIRS_PER_ENTRY",
    "Compared",
    "Comparison",
    "Death",
    "compare_list",
    "comparisons",
    "death_list",
    "deaths",
    "normalise_id",
    "read_list",
]
