"""The signing key: an encrypted keystore (eth-account v3 JSON, as geth and Foundry write) with its
password from a file or an environment variable, or a raw key from the environment for
development. Neither the key nor the password is ever put in a log, an exception or a repr.

Every problem with the key's source is one `ConfigError` line that names the file or variable and
what is wrong with it, and never quotes a secret: not the key, not the password, not the
keystore's ciphertext. The keystore's structure is checked here, field by field, before
eth-account sees it, so that a file that is JSON but not a keystore says which field is missing
instead of raising a KeyError from inside the library.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from bot.errors import ConfigError
from bot.settings import SignerSettings

_HEX = re.compile(r"(?:0[xX])?((?:[0-9a-fA-F]{2})*)")
_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,40}")  # a kdf or cipher name we may quote back
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[][{}]")
_MAX_NESTING = 32
_V3 = "is this an Ethereum V3 keystore?"
_CORRUPT = "is the file corrupt?"
_MAX_KEYSTORE_BYTES = 1 << 20  # real keystores are under 1 KB
_MAX_PASSWORD_BYTES = 1 << 16
# Work factors far past what any wallet writes (geth's standard scrypt is n=2**18, r=8, p=1;
# eth-account's pbkdf2 default is 10**6 rounds) mean a corrupt file, and would otherwise hold the
# process for hours or take all its memory (scrypt needs 128*n*r bytes).
_MAX_SCRYPT_WORK = 1 << 25  # n*r*p
_MAX_PBKDF2_ROUNDS = 100_000_000


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
    if raw and raw.strip():
        return Signer(_from_raw_key(settings.key_env, raw))
    return None


def _from_raw_key(name: str, raw: str) -> LocalAccount:
    """The account of the hex key in environment variable `name`; errors never quote the value."""
    problem = f"{name} does not hold a valid private key"
    expected = "expected 64 hex digits (32 bytes), with or without 0x"
    text = raw.strip()
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if len(digits) != 64:
        raise ConfigError(f"{problem}: {expected}, found {len(digits)} characters")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", digits):
        raise ConfigError(f"{problem}: {expected}, found characters that are not hex digits")
    try:
        account: LocalAccount = Account.from_key(bytes.fromhex(digits))
    except (ValueError, TypeError):
        raise ConfigError(
            f"{problem}: the number is zero or not below the secp256k1 curve order"
        ) from None
    return account


def _from_keystore(settings: SignerSettings) -> LocalAccount:
    path = settings.keystore
    assert path is not None
    where = f"signer.keystore {path}"
    data = _read_file(where, path, "signer.keystore", "the keystore file", _MAX_KEYSTORE_BYTES)
    keystore = _parse_keystore(where, data)
    password, source = _password(settings)
    try:
        key = Account.decrypt(keystore, password)
    except ValueError as err:
        if "MAC mismatch" in str(err):
            # eth-account cannot tell a wrong password from a damaged file: both fail the MAC
            raise ConfigError(
                f"{where}: could not decrypt: wrong password (from {source}) or corrupted "
                "keystore (the MAC does not match)"
            ) from None
        raise ConfigError(
            f"{where}: could not decrypt ({type(err).__name__}); {_CORRUPT}"
        ) from None
    except Exception as err:  # whatever the library raises must become one line, not a traceback
        raise ConfigError(
            f"{where}: could not decrypt ({type(err).__name__}); {_CORRUPT}"
        ) from None
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{where}: decrypts to something that is not a private key; {_CORRUPT}"
        ) from None
    return account


def _password(settings: SignerSettings) -> tuple[str, str]:
    """(the keystore's password, where it came from) for error messages."""
    if settings.password_file is not None:
        path: Path = settings.password_file
        where = f"signer.password_file {path}"
        data = _read_file(
            where, path, "signer.password_file", "a file holding the password", _MAX_PASSWORD_BYTES
        )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: not UTF-8 text") from None
        password = text.rstrip("\r\n")
        if not password:
            raise ConfigError(f"{where}: empty: put the keystore's password in it, on one line")
        return password, "signer.password_file"
    name = settings.password_env
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(
            f"signer: the keystore needs a password: set {name} or signer.password_file"
        )
    if not value:
        raise ConfigError(
            f"signer: {name} is set but empty: set it to the keystore's password, "
            "or set signer.password_file"
        )
    return value, name


def _read_file(where: str, path: Path, setting: str, wanted: str, limit: int) -> bytes:
    """The bytes of a small regular file, or one line saying why they cannot be had."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{where}: not found: set {setting} to the path of {wanted}") from None
    except PermissionError:
        raise ConfigError(
            f"{where}: permission denied: let the keeper's user reach it, or move it"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"{where}: cannot be read ({err.strerror or type(err).__name__})"
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{where}: is a directory: set {setting} to the path of {wanted}")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{where}: is not a regular file: set {setting} to the path of {wanted}")
    if info.st_size > limit:
        raise ConfigError(f"{where}: is {info.st_size} bytes, too large to be {wanted}")
    try:
        with path.open("rb") as file:
            return file.read(limit + 1)[:limit]
    except PermissionError:
        raise ConfigError(
            f"{where}: permission denied: make it readable by the keeper's user"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"{where}: cannot be read ({err.strerror or type(err).__name__})"
        ) from None


def _parse_keystore(where: str, data: bytes) -> dict[str, Any]:
    """The keystore with its keys lower-cased (as eth-account reads it), checked field by field."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; {_V3}") from None
    # json's C parser recurses once per level: a file of nested brackets could overflow the C
    # stack (not a RecursionError) when a library has raised the recursion limit, as py-evm does
    if _nesting(text) > _MAX_NESTING:
        raise ConfigError(f"{where}: not a keystore (JSON nested over {_MAX_NESTING} deep); {_V3}")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:  # its message has a position, never the text
        raise ConfigError(
            f"{where}: not JSON ({err.msg} at line {err.lineno} column {err.colno}); {_V3}"
        ) from None
    except (ValueError, RecursionError):
        raise ConfigError(f"{where}: not JSON; {_V3}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: not a JSON object (found {_kind(document)}); {_V3}")
    keystore = _lower_keys(where, document, "")
    _check_v3(_Fields(where), keystore)
    return keystore


def _nesting(text: str) -> int:
    """How deep the brackets outside JSON strings go (a V3 keystore: 3)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _lower_keys(where: str, obj: dict[str, Any], prefix: str) -> dict[str, Any]:
    """geth wrote `Crypto`, later versions `crypto`: field names are case-insensitive."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key.lower()
        if name in out:
            raise ConfigError(
                f"{where}: {prefix}{name} appears twice (field names ignore case); {_CORRUPT}"
            )
        out[name] = (
            _lower_keys(where, value, f"{prefix}{name}.") if isinstance(value, dict) else value
        )
    return out


class _Fields:
    """Reads one field of the keystore, or raises a line naming it and what is wrong."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {message}")

    def get(self, obj: dict[str, Any], path: str) -> Any:
        name = path.rsplit(".", 1)[-1]
        if name not in obj or obj[name] is None:
            raise self.fail(f"missing {path}; {_V3}")
        return obj[name]

    def object(self, obj: dict[str, Any], path: str) -> dict[str, Any]:
        value = self.get(obj, path)
        if not isinstance(value, dict):
            raise self.fail(f"{path} is {_kind(value)}, expected an object; {_V3}")
        return value

    def integer(self, obj: dict[str, Any], path: str, minimum: int) -> int:
        value = self.get(obj, path)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{path} is {_kind(value)}, expected a whole number; {_V3}")
        if value < minimum:
            raise self.fail(f"{path} is {value}, expected at least {minimum}; {_CORRUPT}")
        return value

    def name(self, obj: dict[str, Any], path: str, supported: tuple[str, ...]) -> str:
        value = self.get(obj, path)
        if not isinstance(value, str):
            raise self.fail(f"{path} is {_kind(value)}, expected a string; {_V3}")
        if value not in supported:
            shown = f"{value!r} " if _NAME.fullmatch(value) else ""
            raise self.fail(f"{path} {shown}is not supported (expected {' or '.join(supported)})")
        return value

    def hex(self, obj: dict[str, Any], path: str, size: int | None = None) -> bytes:
        """Hex bytes; the message gives sizes, never the digits (the ciphertext is one of them)."""
        value = self.get(obj, path)
        if not isinstance(value, str):
            raise self.fail(f"{path} is {_kind(value)}, expected a hex string; {_V3}")
        match = _HEX.fullmatch(value)
        if match is None:
            raise self.fail(f"{path} is not hex (an odd length or a non-hex digit); {_CORRUPT}")
        raw = bytes.fromhex(match.group(1))
        if size is not None and len(raw) != size:
            raise self.fail(f"{path} is {len(raw)} bytes, expected {size}; {_CORRUPT}")
        return raw


def _check_v3(fields: _Fields, keystore: dict[str, Any]) -> None:
    """Everything eth-account's V3 decrypt reads is there, of the right type and size."""
    version = fields.get(keystore, "version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise fields.fail(f"version is {_kind(version)}, expected the number 3; {_V3}")
    if version != 3:
        raise fields.fail(f"version {version} is not supported (expected 3); {_V3}")
    crypto = fields.object(keystore, "crypto")
    kdf = fields.name(crypto, "crypto.kdf", ("scrypt", "pbkdf2"))
    params = fields.object(crypto, "crypto.kdfparams")
    fields.hex(params, "crypto.kdfparams.salt")
    # the first 16 bytes of the derived key decrypt, the next 16 check the MAC
    fields.integer(params, "crypto.kdfparams.dklen", 32)
    if kdf == "scrypt":
        n = fields.integer(params, "crypto.kdfparams.n", 2)
        r = fields.integer(params, "crypto.kdfparams.r", 1)
        p = fields.integer(params, "crypto.kdfparams.p", 1)
        if n & (n - 1):
            raise fields.fail(f"crypto.kdfparams.n is {n}, not a power of 2; {_CORRUPT}")
        if n * r * p > _MAX_SCRYPT_WORK:
            raise fields.fail(
                f"crypto.kdfparams n*r*p is {n * r * p}, far more work than any wallet asks "
                f"for (at most {_MAX_SCRYPT_WORK}); {_CORRUPT}"
            )
    else:
        rounds = fields.integer(params, "crypto.kdfparams.c", 1)
        if rounds > _MAX_PBKDF2_ROUNDS:
            raise fields.fail(
                f"crypto.kdfparams.c is {rounds}, far more rounds than any wallet asks for "
                f"(at most {_MAX_PBKDF2_ROUNDS}); {_CORRUPT}"
            )
        fields.name(params, "crypto.kdfparams.prf", ("hmac-sha256",))
    fields.name(crypto, "crypto.cipher", ("aes-128-ctr",))
    cipherparams = fields.object(crypto, "crypto.cipherparams")
    fields.hex(cipherparams, "crypto.cipherparams.iv", 16)
    fields.hex(crypto, "crypto.ciphertext", 32)
    fields.hex(crypto, "crypto.mac", 32)


def _kind(value: Any) -> str:
    """A JSON value's type, as the user would name it in the file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
