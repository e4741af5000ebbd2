"""A table of data as rows of prompts, and the answers back in the table's shape. Pure.

``data`` is a list or any iterable (each item a row: a mapping is a row of fields, anything else one
value), a pandas ``Series`` (each element a row) or a ``DataFrame`` (each line a row of its columns).
pandas is never imported here: a pandas object is recognised by its type's module, and the answers go
back into a Series built by the same pandas module that made the input.

A template is a string or a callable. A string follows ``%%chat``'s brace rules
(:func:`~shenma_magic._prompt.fill_variables`): ``{}`` is a row's value, ``{column}`` (also
``{column.attr}``, ``{column[key]}``) one of its fields, ``{row[first name]}`` a field whose name is not a
Python name; ``{{``/``}}`` are literal braces and anything else in braces stays as written. The filling is
one pass, so braces inside a row's text are never filled in turn. A callable gets the row and returns the
prompt, or the list of messages to send.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Union

from ._errors import ConfigError
from ._prompt import fill_variables

__all__ = ["RowError", "Rows", "Template", "rows_of"]

Message = dict[str, Any]
# What a template makes of a row: the user's text, or whole messages.
Prompt = Union[str, list[Message]]

# {} is the row's value: replaced by a name no one writes, then filled with the rest in one pass.
_ROW_NAME = "_shenma_row_value_"
_EMPTY = re.compile(r"\{\{|\}\}|\{\}")


class _Layers(Mapping[str, Any]):
    """Names looked up in each mapping in turn (a ChainMap that copies nothing: the notebook's namespace
    can be large, and there is one lookup per row)."""

    def __init__(self, layers: tuple[Mapping[str, Any], ...]) -> None:
        self._layers = layers

    def __getitem__(self, name: str) -> Any:
        for layer in self._layers:
            if name in layer:
                return layer[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in self._layers:
            for name in layer:
                if name not in seen:
                    seen.add(name)
                    yield name

    def __len__(self) -> int:
        return sum(1 for _ in self)


class RowError(Exception):
    """A row the template cannot make a prompt of (the callable failed, or returned something else).
    That row fails with this reason; the others go on."""


def _is_pandas(data: Any, name: str) -> bool:
    kind = type(data)
    return kind.__name__ == name and kind.__module__.split(".")[0] == "pandas"


@dataclass
class Rows:
    """The rows of ``data`` (read lazily) and how to give the answers back.

    ``total`` is None for an iterable without a length. ``index`` is the pandas index of a Series or
    DataFrame (the answers keep it), else None.
    """

    items: Iterator[Any]
    total: Optional[int]
    kind: str  # "list", "series" or "dataframe"
    index: Any = None
    _pandas: Any = None

    def rebuild(self, answers: list[Any]) -> Any:
        """The answers in the input's shape: a list, or a Series with the input's index. After an
        interrupted run, the rows not reached yet are None (when the data's length is known)."""
        if self.total is not None and len(answers) < self.total:
            answers = answers + [None] * (self.total - len(answers))
        if self.kind == "list":
            return answers
        return self._pandas.Series(answers, index=self.index, dtype=object)


def rows_of(data: Any) -> Rows:
    """Rows from a list/iterable, a pandas Series or DataFrame. A string, bytes or a mapping is refused
    (each would be iterated as characters or keys, surely not what was meant)."""
    if _is_pandas(data, "DataFrame"):
        import sys

        pandas = sys.modules[type(data).__module__.split(".")[0]]
        columns = [str(c) for c in data.columns]

        def records() -> Iterator[dict[str, Any]]:
            for values in data.itertuples(index=False, name=None):
                yield dict(zip(columns, values, strict=True))

        return Rows(records(), len(data), "dataframe", data.index, pandas)
    if _is_pandas(data, "Series"):
        import sys

        pandas = sys.modules[type(data).__module__.split(".")[0]]
        return Rows(iter(data.tolist()), len(data), "series", data.index, pandas)
    if isinstance(data, (str, bytes, bytearray)):
        raise ConfigError(
            "data is one string, not a list of rows", "pass a list (e.g. [text]) or a pandas Series/DataFrame"
        )
    if isinstance(data, Mapping):
        raise ConfigError(
            "data is a dict, not a list of rows",
            "pass a list of dicts, list(d.values()), or a pandas DataFrame",
        )
    if not isinstance(data, Iterable):
        raise ConfigError(
            f"data is a {type(data).__name__}, not a list of rows",
            "pass a list, a pandas Series or DataFrame",
        )
    total: Optional[int]
    try:
        total = len(data)  # type: ignore[arg-type]  # an Iterable may have no len: the TypeError below
    except TypeError:
        total = None
    return Rows(iter(data), total, "list")


class Template:
    """Makes each row's prompt. ``namespace`` (the notebook's variables, for ``%%chat --over``) fills the
    names a row does not have: a row's own fields win."""

    def __init__(
        self, template: Union[str, Callable[[Any], Any]], namespace: Optional[Mapping[str, Any]] = None
    ) -> None:
        if isinstance(template, str):
            if not template.strip():
                raise ConfigError("the template is empty", "write the prompt, with {} where each row goes")
            # Two forms: with {} for a row that is one value, as written for a row of fields (where {} is
            # more likely an empty JSON object in the instructions).
            self._text: Optional[str] = template
            self._scalar_text = _EMPTY.sub(
                lambda m: "{" + _ROW_NAME + "}" if m.group(0) == "{}" else m.group(0), template
            )
            self._call: Optional[Callable[[Any], Any]] = None
        elif callable(template):
            self._text = None
            self._scalar_text = ""
            self._call = template
        else:
            raise ConfigError(
                f"the template is a {type(template).__name__}",
                "pass a string with {} or {column}, or a function of the row",
            )
        self._namespace: Mapping[str, Any] = namespace if namespace is not None else {}
        self._checked = False

    def _fill(self, row: Any) -> str:
        assert self._text is not None
        if isinstance(row, Mapping):
            return fill_variables(self._text, _Layers((row, {"row": row}, self._namespace)))
        return fill_variables(self._scalar_text, _Layers(({_ROW_NAME: row, "row": row}, self._namespace)))

    def check(self, row: Any) -> None:
        """Refuse a string template that does not use the row (every request would be the same prompt),
        once, on the first row. Raises ConfigError before anything is sent."""
        if self._checked or self._text is None:
            return
        self._checked = True
        blank = fill_variables(self._text, self._namespace)
        if self._fill(row) != blank:
            return
        if isinstance(row, Mapping):
            names = ", ".join(f"{{{k}}}" for k in list(row)[:6])
            raise ConfigError(
                "the template uses no field of the rows: every request would be the same",
                f"put the fields where they go: {names}" + (" …" if len(row) > 6 else ""),
            )
        raise ConfigError(
            "the template does not use the row: every request would be the same",
            "put {} where each row's value goes (write {{ and }} for literal braces)",
        )

    def prompt(self, row: Any) -> Prompt:
        """The row's prompt (text) or messages. Raises RowError for a row the callable cannot handle."""
        if self._text is not None:
            return self._fill(row)
        assert self._call is not None
        try:
            made = self._call(row)
        except Exception as exc:
            raise RowError(f"the template function failed on this row: {type(exc).__name__}: {exc}") from None
        if isinstance(made, str):
            return made
        if (
            isinstance(made, list)
            and made
            and all(isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in made)
        ):
            return [dict(m) for m in made]
        raise RowError(
            f"the template function returned a {type(made).__name__}: it must return the prompt (a str) "
            "or a list of messages ({'role': ..., 'content': ...})"
        )
