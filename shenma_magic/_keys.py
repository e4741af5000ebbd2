"""Where keys come from, and which host each one may be sent to.

Order: a key entered with ``%chat key`` this session, the user's key file (mode 0600, in the XDG config
dir, one key per host), ``SHENMA_API_KEY``, then ``OPENAI_API_KEY``. A key only goes to the host it
belongs to: a saved key to its host; an environment key to the host of ``SHENMA_BASE_URL`` /
``OPENAI_BASE_URL`` (default api.whatai.cc / api.openai.com) or to this machine (127.0.0.1, localhost),
where local relays and test servers live. So a notebook that points ``base_url`` somewhere else cannot
walk off with your key. Hosts are compared in the one canonical form of
:func:`~shenma_magic._urls.parse_base_url`, the same parse that decides where the request goes.

A key with a character an HTTP header cannot carry (a zero-width space, a full-width letter, an inner
space) is refused with one line when it is entered and when it would first be used, naming where it came
from and never quoting it. Raw key strings are kept out of the frames that raise, so a verbose traceback
cannot show one.
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
from ._secret import Secret, header_problem, host_of, is_loopback_host

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
        Returns the host.

        Raises:
            ConfigError: the URL is refused, the key is empty, or it holds a character an HTTP header
                cannot carry (named by code point, never quoted).
        """
        secret = Secret(key.strip())
        del key  # from here on only the masked wrapper is in this frame
        host = host_of(base_url)
        if not secret:
            raise ConfigError("no key entered", "paste the key again at the prompt")
        _check_header_safe(secret, "the key entered")
        self._session[host] = secret
        if save:
            keys = self._read_file()
            keys[host] = secret.reveal()
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

    def resolve(self, base_url: str) -> tuple[Optional[Secret], str]:
        """The key to send to ``base_url``'s host, and where it came from (for ``%chat`` to show).

        Raises:
            ConfigError: the URL is refused, or the chosen key holds a character an HTTP header cannot
                carry (the line names its source: the key file or the environment variable).
        """
        host = host_of(base_url)
        if host in self._session:
            return self._session[host], "entered with %chat key"
        saved = self._saved_key(host)
        if saved:
            _check_header_safe(saved, f"the key saved for {host} in {self.path}")
            return saved, f"key file {self.path}"
        local = is_loopback_host(host)
        for var, url_var, home in (
            ("SHENMA_API_KEY", "SHENMA_BASE_URL", SHENMA_HOME),
            ("OPENAI_API_KEY", "OPENAI_BASE_URL", OPENAI_HOME),
        ):
            value = self._env_key(var)
            if not value:
                continue
            if host == self._env_home(url_var, home) or local:
                _check_header_safe(value, f"${var}")
                return value, f"${var}"
        return None, ""

    def known_keys(self) -> list[str]:
        """Every key this store knows: entered this session, saved in the key file, and in
        ``SHENMA_API_KEY`` / ``OPENAI_API_KEY``. For refusing request bodies that carry one and for masking
        them in whatever a server sends back; never show the result."""
        keys = [secret.reveal() for secret in self._session.values()]
        keys.extend(self._read_file().values())
        for var in ("SHENMA_API_KEY", "OPENAI_API_KEY"):
            value = (self._environ.get(var) or "").strip()
            if value:
                keys.append(value)
        return list(dict.fromkeys(keys))

    def key_sources(self) -> list[tuple[Secret, str]]:
        """Each known key with where it came from (``$SHENMA_API_KEY``, ``key file``...), keys masked."""
        out = [(secret, f"entered this session for {host}") for host, secret in self._session.items()]
        out.extend((Secret(key), f"key file ({host})") for host, key in self._read_file().items())
        for var in ("SHENMA_API_KEY", "OPENAI_API_KEY"):
            secret = self._env_key(var)
            if secret:
                out.append((secret, f"${var}"))
        return out

    # -- helpers that keep raw keys out of the caller's frame ---------------------------------------------

    def _saved_key(self, host: str) -> Optional[Secret]:
        value = self._read_file().get(host)
        return Secret(value) if value else None

    def _env_key(self, var: str) -> Optional[Secret]:
        value = (self._environ.get(var) or "").strip()
        return Secret(value) if value else None

    def _env_home(self, url_var: str, default: str) -> Optional[str]:
        url = self._environ.get(url_var)
        if not url:
            return default
        try:
            return host_of(url)
        except ConfigError:
            # A malformed SHENMA_BASE_URL scopes its key nowhere (this machine excepted): sending it on a
            # guess of what the URL meant is exactly what must not happen.
            return None


def _check_header_safe(secret: Secret, source: str) -> None:
    """Refuse a key an HTTP header cannot carry, naming where it came from and never quoting it."""
    problem = header_problem(secret.reveal())
    if problem:
        raise ConfigError(
            f"{source} holds {problem}, which an HTTP header cannot carry",
            "copy the key again from the relay's console (only visible ASCII, no spaces); nothing was sent",
        )
