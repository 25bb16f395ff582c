"""Secret references (vault:<path>#<key>) resolved through Vault; plain values pass through unchanged."""
from __future__ import annotations

from typing import Any, Callable

VAULT_PREFIX = "vault:"


class SecretError(RuntimeError):
    """A secret reference could not be resolved. The message never contains a secret or a token."""


def is_reference(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(VAULT_PREFIX)


def resolver_for(vault_conf: dict[str, Any] | None) -> Callable[[str], str]:
    def resolve(value: str) -> str:
        if is_reference(value):
            raise SecretError(f"cannot resolve {value.split('#')[0]}: Vault support is not built yet")
        return value

    return resolve
