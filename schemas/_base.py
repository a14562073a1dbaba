"""The one model configuration every schema shares: frozen, strict, no extra fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FrozenModel"]


class FrozenModel(BaseModel):
    """Base of every model here: immutable, hashable, strict types, unknown fields refused.

    Field docstrings become JSON Schema descriptions.
    """

    # Written out here, not shared through a variable, so the pydantic mypy plugin sees it.
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True
    )
