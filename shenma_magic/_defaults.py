"""The defaults, in one place: 神马中转API's base URL and the model its docs use."""

from __future__ import annotations

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL"]

DEFAULT_BASE_URL = "https://api.whatai.cc/v1"
DEFAULT_MODEL = "gpt-4o-mini"
