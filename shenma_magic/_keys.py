"""Where keys come from, and which host each one may be sent to.

Order: a key entered with ``%chat key`` this session, the user's key file (mode 0600, in the XDG config
dir, one key per host), ``SHENMA_API_KEY``, then ``OPENAI_API_KEY``. A key only goes to the host it
belongs to: a saved key to its host; an environment key to the host of ``SHENMA_BASE_URL`` /
``OPENAI_BASE_URL`` (default api.whatai.cc / api.openai.com) or to this machine (127.0.0.1, localhost),
where local relays and test servers live. So a notebook that points ``base_url`` somewhere else cannot
walk off with your key.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from ._errors import ConfigError
from ._secret import Secret, host_of, is_loopback_host

__all__ = ["KeyStore", "key_file_path"]

SHENMA_HOME = "api.whatai.cc"
OPENAI_HOME = "api.openai.com"


def key_file_path(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "shenma-magic" / "keys.json"


class KeyStore:
    def __init__(self, path: Optional[Path] = None, environ: Optional[Mapping[str, str]] = None) -> None:
        self._environ = environ if environ is not None else os.environ
        self._path = path
        self._session: dict[str, Secret] = {}

    @property
    def path(self) -> Path:
        return self._path or key_file_path(self._environ)

    def __repr__(self) -> str:
        return f"KeyStore(path={str(self.path)!r}, session_hosts={sorted(self._session)!r})"

    # -- the file ----------------------------------------------------------------------------------------

    def _read_file(self) -> dict[str, str]:
        path = self.path
        try:
            mode = path.stat().st_mode
        except OSError:
            return {}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Someone loosened it; keys are only ever kept private.
            with contextlib.suppress(OSError):
                path.chmod(0o600)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, dict):
            return {}
        return {str(h).lower(): str(k) for h, k in keys.items() if isinstance(k, str) and k}

    def _write_file(self, keys: dict[str, str]) -> None:
        path = self.path
        try:
            cwd = Path.cwd().resolve()
            resolved = path.resolve()
        except OSError:
            cwd, resolved = Path("/nonexistent"), path
        if cwd == resolved.parent or cwd in resolved.parents:
            raise ConfigError(
                f"refusing to write keys into the current project folder ({path})",
                "set XDG_CONFIG_HOME to a folder outside your project (default ~/.config)",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            path.parent.chmod(0o700)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "keys": keys}, fh, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    # -- public ------------------------------------------------------------------------------------------

    def set(self, base_url: str, key: str, *, save: bool = False) -> str:
        """Use ``key`` for the host of ``base_url`` (this session; also in the key file if ``save``).
        Returns the host."""
        host = host_of(base_url)
        key = key.strip()
        if not key:
            raise ConfigError("no key entered", "run %chat key again and paste the key at the prompt")
        self._session[host] = Secret(key)
        if save:
            keys = self._read_file()
            keys[host] = key
            self._write_file(keys)
        return host

    def forget(self, base_url: str) -> bool:
        """Drop the key for this host from the session and the key file. True if there was one."""
        host = host_of(base_url)
        found = self._session.pop(host, None) is not None
        keys = self._read_file()
        if host in keys:
            del keys[host]
            self._write_file(keys)
            found = True
        return found

    def known_keys(self) -> list[str]:
        """Every key this store could send anywhere (entered, saved, or in the environment), so that a log
        or an output can mask them; never for sending."""
        keys = [secret.reveal() for secret in self._session.values()]
        keys.extend(self._read_file().values())
        keys.extend((self._environ.get(var) or "").strip() for var in ("SHENMA_API_KEY", "OPENAI_API_KEY"))
        return [key for key in dict.fromkeys(keys) if key]

    def saved_hosts(self) -> list[str]:
        return sorted(self._read_file())

    def resolve(self, base_url: str) -> tuple[Optional[Secret], str]:
        """The key to send to ``base_url``'s host, and where it came from (for ``%chat`` to show)."""
        host = host_of(base_url)
        if host in self._session:
            return self._session[host], "entered with %chat key"
        saved = self._read_file().get(host)
        if saved:
            return Secret(saved), f"key file {self.path}"
        local = is_loopback_host(host)
        for var, url_var, home in (
            ("SHENMA_API_KEY", "SHENMA_BASE_URL", SHENMA_HOME),
            ("OPENAI_API_KEY", "OPENAI_BASE_URL", OPENAI_HOME),
        ):
            value = (self._environ.get(var) or "").strip()
            if not value:
                continue
            env_home = host_of(self._environ[url_var]) if self._environ.get(url_var) else home
            if host == env_home or local:
                return Secret(value), f"${var}"
        return None, ""
