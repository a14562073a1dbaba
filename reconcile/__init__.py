"""Reconciliation of the business, finance and archive domains (issue 3: not built yet).

Nothing is exported yet; the package exists so the layer order
``schemas <- ledger <- reconcile <- archive <- cli`` is in place from the start.
"""

__all__: list[str] = []
