"""Pydantic models the tests share. Import this module only after ``pytest.importorskip("pydantic")``:
pydantic is optional."""

import pydantic


class Address(pydantic.BaseModel):
    city: str


class Person(pydantic.BaseModel):
    """A model with a nested one: its schema has ``$defs``."""

    name: str
    home: Address


class Opaque:
    """A class that is no JSON type."""


class Holder(pydantic.BaseModel):
    """A model that pydantic builds but cannot describe as JSON Schema."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque
