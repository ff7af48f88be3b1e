"""Provider API keys: env var, then systemd credential, then the OS keyring.

Keys never go into config.toml. The lookup order, first match wins:

1. ``AIGW_<NAME>_API_KEY`` (NAME upper-cased, every non-alphanumeric -> ``_``)
2. ``$CREDENTIALS_DIRECTORY/aigw-<name>`` (systemd ``LoadCredential=``)
3. the OS keyring, service ``aigw``, user ``<name>``

Any of them may hold several keys separated by commas (a key pool,
:mod:`aigw.providers.keypool`); ``aigw providers set-key NAME --add`` grows the keyring's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from aigw.errors import SecretError

SERVICE = "aigw"

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")


def env_var_name(provider: str) -> str:
    return f"AIGW_{_NON_ALNUM.sub('_', provider).upper()}_API_KEY"


def credential_name(provider: str) -> str:
    return f"aigw-{provider}"


def lookup(provider: str) -> tuple[str, str] | None:
    """Return (key, where-it-came-from) or None. Never logs the key."""
    env = env_var_name(provider)
    value: str | None = os.environ.get(env, "").strip()
    if value:
        return value, f"env {env}"
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / credential_name(provider)
        try:
            value = path.read_text().strip()
        except OSError:
            value = ""
        if value:
            return value, f"systemd credential {path.name}"
    value = _keyring_get(provider)
    if value:
        return value, "keyring"
    return None


COUNTERS_ENV = "AIGW_COUNTERS_PASSWORD"
COUNTERS_USER = "aigw-counters"  # its keyring user


def counters_password() -> tuple[str, str] | None:
    """The Redis password of ``[counters]`` and where it came from, or None.

    ``AIGW_COUNTERS_PASSWORD``, then ``REDISCLI_AUTH`` (what redis-cli reads), then the
    OS keyring (service ``aigw``, user ``aigw-counters``). Never logs it."""
    for env in (COUNTERS_ENV, "REDISCLI_AUTH"):
        value = os.environ.get(env, "")
        if value:
            return value, f"env {env}"
    stored = _keyring_get(COUNTERS_USER)
    return (stored, "keyring") if stored else None


def split_keys(value: str) -> list[str]:
    """``"k1, k2,k1\\nk3"`` -> ``["k1", "k2", "k3"]``: commas or newlines separate keys
    (no provider's keys contain either); blanks and repeats are dropped."""
    out: list[str] = []
    for part in value.replace("\n", ",").split(","):
        key = part.strip()
        if key and key not in out:
            out.append(key)
    return out


def lookup_keys(provider: str) -> tuple[list[str], str] | None:
    """Return (the pool's keys, where they came from) or None. Never logs a key."""
    found = lookup(provider)
    if found is None:
        return None
    keys = split_keys(found[0])
    return (keys, found[1]) if keys else None


def _no_backend_message(provider: str) -> str:
    return (
        "no OS keyring backend is available on this machine (common on headless servers). "
        "Give aigw the key another way: set the environment variable "
        f"{env_var_name(provider)}, or a systemd credential "
        f"(LoadCredential={credential_name(provider)}:/path), "
        "or install a keyring backend (e.g. `pip install keyrings.alt`)."
    )


def check_backend(provider: str) -> None:
    """SecretError naming ``provider``'s alternatives if there is no usable keyring."""
    _backend(provider)


def _backend(provider: str) -> object:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    # The chainer with no usable members behaves like the fail backend.
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        raise SecretError(_no_backend_message(provider))
    return backend


def _keyring_get(provider: str) -> str | None:
    try:
        backend = _backend(provider)
        value = backend.get_password(SERVICE, provider)  # type: ignore[attr-defined]
    except Exception:
        # A broken or absent keyring only means "not found here".
        return None
    return value if isinstance(value, str) and value else None


def store(provider: str, key: str) -> None:
    """Save ``key`` in the OS keyring; SecretError with alternatives if impossible."""
    if not key.strip():
        raise SecretError("the key is empty; nothing was stored")
    backend = _backend(provider)
    try:
        backend.set_password(SERVICE, provider, key.strip())  # type: ignore[attr-defined]
    except SecretError:
        raise
    except Exception as exc:
        raise SecretError(
            f"the OS keyring refused the key ({exc}). {_no_backend_message(provider)}"
        ) from exc


def add(provider: str, key: str) -> int:
    """Add ``key`` to the keyring entry's pool; the number of keys it now holds."""
    new = split_keys(key)
    if not new:
        raise SecretError("the key is empty; nothing was stored")
    current = _keyring_get(provider)
    keys = split_keys(current or "")
    keys.extend(k for k in new if k not in keys)
    store(provider, ",".join(keys))
    return len(keys)


def delete(provider: str) -> bool:
    """Remove a stored key; True if one was removed."""
    try:
        backend = _backend(provider)
        backend.delete_password(SERVICE, provider)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True
