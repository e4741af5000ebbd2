"""A callable's parameter type hints, read without failing on notebook code. Not pure: string annotations
are evaluated (``eval``) in the function's own module, as ``typing.get_type_hints`` would.

Notebook functions often carry annotations that cannot all be resolved (a name defined in a later cell, a
typo): ``get_type_hints`` then fails for the whole function, so each parameter is resolved on its own and one
that cannot be resolved is reported as unannotated (:data:`EMPTY`) instead of guessed.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable

__all__ = ["EMPTY", "hint_target", "parameter_hints", "safe_hints"]

# "No annotation" (and "no default"), as inspect says it.
EMPTY: object = inspect.Parameter.empty


def hint_target(fn: Callable[..., object]) -> object:
    """The object that carries the hints, docstring and name: the function itself, a partial's function,
    or a callable object's ``__call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn) or isinstance(fn, type):
        return fn
    # A callable object: its class's __call__ carries the hints and the docstring.
    return inspect.getattr_static(type(fn), "__call__", fn)


def safe_hints(obj: object) -> dict[str, object]:
    """``typing.get_type_hints`` (with ``Annotated`` extras), or ``{}`` if any of them cannot be resolved."""
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception:  # unresolvable forward references in notebook code: fall back to no hints
        return {}


def _resolve(annotation: str, target: object) -> object:
    """One string annotation evaluated in the function's module; :data:`EMPTY` if it cannot be."""
    unwrapped = inspect.unwrap(target) if callable(target) else target
    namespace = getattr(unwrapped, "__globals__", None)
    if not isinstance(namespace, dict):
        return EMPTY
    try:
        # The user's own annotation, in the user's own module: the evaluation get_type_hints would do.
        return eval(annotation, namespace)
    except Exception:  # a name defined nowhere (yet): say nothing rather than guess
        return EMPTY


def parameter_hints(fn: Callable[..., object], sig: inspect.Signature) -> dict[str, object]:
    """The type hint of each parameter in ``sig`` (:data:`EMPTY` for none, or one that cannot be resolved)."""
    target = hint_target(fn)
    hints = safe_hints(target)
    out: dict[str, object] = {}
    for name, param in sig.parameters.items():
        if name in hints:
            out[name] = hints[name]
        elif isinstance(param.annotation, str):
            # get_type_hints fails as a whole on one bad name; the other parameters still deserve types.
            out[name] = _resolve(param.annotation, target)
        else:
            out[name] = param.annotation
    return out
