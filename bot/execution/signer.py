"""The signing key: an encrypted keystore (eth-account v3 JSON, as geth and Foundry write) with its
password from a file or an environment variable, or a raw key from the environment for
development. Neither the key nor the password is ever put in a log, an exception or a repr.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from bot.errors import ConfigError
from bot.settings import SignerSettings


class Signer:
    """Signs transactions for one address; prints as that address only."""

    __slots__ = ("_account",)

    def __init__(self, account: LocalAccount) -> None:
        self._account = account

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign(self, tx: dict[str, Any]) -> tuple[bytes, str]:
        """(raw signed bytes, transaction hash)."""
        signed = self._account.sign_transaction(tx)
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()

    def __repr__(self) -> str:
        return f"Signer({self.address})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Signer cannot be pickled or copied out of the process")


def load_signer(settings: SignerSettings) -> Signer | None:
    """The configured signer, or None when no key is configured (the keeper then runs dry)."""
    if settings.keystore is not None:
        return Signer(_from_keystore(settings))
    raw = os.environ.get(settings.key_env)
    if raw:
        try:
            return Signer(Account.from_key(raw.strip()))
        except (ValueError, TypeError):
            # the value must not appear in the message
            raise ConfigError(f"{settings.key_env} does not hold a valid private key") from None
    return None


def _from_keystore(settings: SignerSettings) -> LocalAccount:
    path = settings.keystore
    assert path is not None
    if not path.is_file():
        raise ConfigError(f"signer.keystore: {path} not found")
    try:
        keystore = json.loads(path.read_text())
    except ValueError:
        raise ConfigError(f"signer.keystore: {path} is not a JSON keystore") from None
    password = _password(settings)
    try:
        key = Account.decrypt(keystore, password)
    except ValueError:
        raise ConfigError(
            f"signer.keystore: could not decrypt {path}: wrong password (from "
            f"{'signer.password_file' if settings.password_file else settings.password_env})"
        ) from None
    account: LocalAccount = Account.from_key(key)
    return account


def _password(settings: SignerSettings) -> str:
    if settings.password_file is not None:
        path: Path = settings.password_file
        if not path.is_file():
            raise ConfigError(f"signer.password_file: {path} not found")
        return path.read_text().rstrip("\n")
    value = os.environ.get(settings.password_env)
    if value is None:
        raise ConfigError(
            f"signer: the keystore needs a password: set {settings.password_env} "
            "or signer.password_file"
        )
    return value
