"""Taking a key that was typed or pasted into a cell back out of IPython's records of it."""

from __future__ import annotations

from typing import Any

from ._secret import key_tokens, mask, redact

__all__ = ["scrub_key_from_history"]


def scrub_key_from_history(shell: Any, text: str) -> None:
    """Take a pasted key out of In/_i*, the history database and (in Jupyter) the cell itself."""
    secrets = key_tokens(text)
    if not secrets:
        return

    def clean(value: str) -> str:
        return redact(value, *secrets)

    hm = getattr(shell, "history_manager", None)
    if hm is not None:
        for hist in (getattr(hm, "input_hist_parsed", None), getattr(hm, "input_hist_raw", None)):
            if isinstance(hist, list):
                hist[:] = [clean(h) if isinstance(h, str) else h for h in hist]
        cache = getattr(hm, "db_input_cache", None)
        if isinstance(cache, list):
            lock = getattr(hm, "db_input_cache_lock", None)
            if lock is not None:
                with lock:
                    cache[:] = [(n, clean(s), clean(r)) for (n, s, r) in cache]
        db = getattr(hm, "db", None)
        if db is not None and getattr(hm, "enabled", True):
            try:
                with db:
                    for secret in secrets:
                        db.execute(
                            "UPDATE history SET source = replace(source, ?, ?), "
                            "source_raw = replace(source_raw, ?, ?)",
                            (secret, mask(secret), secret, mask(secret)),
                        )
            except Exception:  # a history DB we cannot write (e.g. :memory: closed) is not worth a crash
                pass
    ns = getattr(shell, "user_ns", {})
    for name, value in list(ns.items()):
        if (name in ("_i", "_ii", "_iii") or (name.startswith("_i") and name[2:].isdigit())) and isinstance(
            value, str
        ):
            ns[name] = clean(value)
    if getattr(shell, "kernel", None) is not None:
        # Replace the cell's text in the frontend so the key is not saved with the notebook either.
        current = ns.get("_i") or ""
        try:
            cell_text = hm.input_hist_raw[-1] if hm is not None and hm.input_hist_raw else current
        except Exception:
            cell_text = current
        if cell_text:
            shell.set_next_input(clean(cell_text), replace=True)
