"""The signer's key sources: every problem is one line naming the file or variable and what is
wrong, a RebalancerError, and never carries the key, the password or the keystore's ciphertext."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from eth_account import Account
from eth_typing import HexStr

from bot.cli import main
from bot.errors import ConfigError, RebalancerError
from bot.execution.signer import load_signer
from bot.paths import ROOT
from bot.settings import SignerSettings
from tests.faults import Faults, adversarial

KEY = HexStr("0x" + hashlib.sha256(b"tests/unit/test_signer.py").hexdigest())
ADDRESS = Account.from_key(KEY).address
PASSWORD = "correct horse battery staple 42"
PASSWORD_ENV = "TEST_SIGNER_PASSWORD"
KEY_ENV = "TEST_SIGNER_KEY"
Kdf = Literal["pbkdf2", "scrypt"]


def make_keystore(kdf: Kdf = "pbkdf2") -> dict[str, Any]:
    # the lowest work factors eth-account accepts: the checks, not the kdf, are under test
    keystore: dict[str, Any] = Account.encrypt(KEY, PASSWORD, kdf=kdf, iterations=2)
    return keystore


KEYSTORE = make_keystore()
CIPHERTEXT = KEYSTORE["crypto"]["ciphertext"]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (PASSWORD_ENV, KEY_ENV, "REBALANCER_KEYSTORE_PASSWORD", "REBALANCER_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def settings(keystore: Path | None = None, **fields: Any) -> SignerSettings:
    return SignerSettings(keystore=keystore, password_env=PASSWORD_ENV, key_env=KEY_ENV, **fields)


def write(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / "keystore.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def secrets(*extra: str) -> list[str]:
    key = KEY.removeprefix("0x")
    return [key, key.upper(), PASSWORD, CIPHERTEXT, *extra]


def fails(faults: Faults, signer_settings: SignerSettings, *extra_secrets: str) -> str:
    """The one-line message load_signer fails with, checked free of every secret. A ConfigError
    is the expected refusal; any other exception escaping load_signer is counted."""
    faults.not_applicable("loss", "duplicates", why="no chain: a parser")
    with faults.escaped(ConfigError) as refused:
        load_signer(signer_settings)
    error = refused.error
    assert isinstance(error, ConfigError), "load_signer accepted it"
    assert isinstance(error, RebalancerError)
    message = str(error)
    assert "\n" not in message
    assert message
    for secret in secrets(*extra_secrets):
        assert secret not in message
    # the cause is suppressed: a caller printing the chain would not show the library's error
    assert error.__suppress_context__ or error.__context__ is None
    return message


# --- a good keystore loads ----------------------------------------------------------------------


@pytest.mark.parametrize("kdf", ["pbkdf2", "scrypt"])
def test_a_keystore_loads(tmp_path: Path, kdf: Kdf) -> None:
    signer = load_signer(settings(write(tmp_path, make_keystore(kdf))))
    assert signer is not None
    assert signer.address == ADDRESS
    assert KEY[2:] not in repr(signer)


def test_geths_capitalised_crypto_field_loads(tmp_path: Path) -> None:
    keystore = copy.deepcopy(KEYSTORE)
    keystore["Crypto"] = keystore.pop("crypto")
    signer = load_signer(settings(write(tmp_path, keystore)))
    assert signer is not None
    assert signer.address == ADDRESS


def test_the_password_comes_from_a_file(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    signer = load_signer(settings(write(tmp_path, KEYSTORE), password_file=password_file))
    assert signer is not None
    assert signer.address == ADDRESS


# --- malformed keystores ------------------------------------------------------------------------


@adversarial
def test_not_json(tmp_path: Path, faults: Faults) -> None:
    path = write(tmp_path, '{"crypto": {"ciphertext": "' + CIPHERTEXT + '",')
    message = fails(faults, settings(path))
    assert message.startswith(f"signer.keystore {path}: not JSON (")
    assert "line 1 column" in message
    assert "Ethereum V3 keystore" in message


@adversarial
def test_not_utf8(tmp_path: Path, faults: Faults) -> None:
    message = fails(faults, settings(write(tmp_path, b"\x80\x81 not text")))
    assert "not UTF-8 text" in message


@adversarial
def test_deeply_nested_json(tmp_path: Path, faults: Faults) -> None:
    # py-evm, which the tests import, raises the recursion limit: json would overflow the C stack
    message = fails(faults, settings(write(tmp_path, "[" * 100_000 + "]" * 100_000)))
    assert "not a keystore (JSON nested over 32 deep)" in message


def test_brackets_inside_strings_do_not_count(tmp_path: Path) -> None:
    keystore = copy.deepcopy(KEYSTORE)
    keystore["note"] = "[[[[" * 100 + '\\"{{{{' * 100
    signer = load_signer(settings(write(tmp_path, keystore)))
    assert signer is not None


@adversarial
@pytest.mark.parametrize(
    ("content", "found"),
    [
        ([KEYSTORE], "an array"),
        (json.dumps(CIPHERTEXT), "a string"),
        (3, "a number"),
        (None, "null"),
    ],
    ids=["array", "string", "number", "null"],
)
def test_json_but_not_an_object(tmp_path: Path, content: Any, found: str, faults: Faults) -> None:
    path = write(tmp_path, content)
    message = fails(faults, settings(path))
    assert f"signer.keystore {path}: not a JSON object (found {found})" in message


def without(*path: str) -> Callable[[dict[str, Any]], None]:
    def edit(keystore: dict[str, Any]) -> None:
        obj = keystore
        for name in path[:-1]:
            obj = obj[name]
        del obj[path[-1]]

    return edit


def setting(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def edit(keystore: dict[str, Any]) -> None:
        obj = keystore
        for name in path[:-1]:
            obj = obj[name]
        obj[path[-1]] = value

    return edit


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # missing fields
    ("no-version", without("version"), "missing version; is this an Ethereum V3 keystore?"),
    ("no-crypto", without("crypto"), "missing crypto; is this an Ethereum V3 keystore?"),
    ("no-kdf", without("crypto", "kdf"), "missing crypto.kdf; is this an Ethereum V3 keystore?"),
    ("no-kdfparams", without("crypto", "kdfparams"), "missing crypto.kdfparams;"),
    ("no-salt", without("crypto", "kdfparams", "salt"), "missing crypto.kdfparams.salt;"),
    ("no-c", without("crypto", "kdfparams", "c"), "missing crypto.kdfparams.c;"),
    ("no-dklen", without("crypto", "kdfparams", "dklen"), "missing crypto.kdfparams.dklen;"),
    ("no-prf", without("crypto", "kdfparams", "prf"), "missing crypto.kdfparams.prf;"),
    ("no-cipher", without("crypto", "cipher"), "missing crypto.cipher;"),
    ("no-cipherparams", without("crypto", "cipherparams"), "missing crypto.cipherparams;"),
    ("no-iv", without("crypto", "cipherparams", "iv"), "missing crypto.cipherparams.iv;"),
    ("no-ciphertext", without("crypto", "ciphertext"), "missing crypto.ciphertext;"),
    ("no-mac", without("crypto", "mac"), "missing crypto.mac;"),
    ("null-mac", setting(None, "crypto", "mac"), "missing crypto.mac;"),
    # wrong types
    ("crypto-string", setting("x", "crypto"), "crypto is a string, expected an object"),
    ("kdfparams-array", setting([], "crypto", "kdfparams"), "crypto.kdfparams is an array"),
    ("kdf-number", setting(1, "crypto", "kdf"), "crypto.kdf is a number, expected a string"),
    ("c-string", setting("2", "crypto", "kdfparams", "c"), "crypto.kdfparams.c is a string"),
    (
        "c-float",
        setting(2.5, "crypto", "kdfparams", "c"),
        "crypto.kdfparams.c is a number, expected a whole number",
    ),
    (
        "dklen-bool",
        setting(True, "crypto", "kdfparams", "dklen"),
        "crypto.kdfparams.dklen is a boolean",
    ),
    (
        "ciphertext-number",
        setting(12, "crypto", "ciphertext"),
        "crypto.ciphertext is a number, expected a hex string",
    ),
    (
        "cipherparams-string",
        setting("00", "crypto", "cipherparams"),
        "crypto.cipherparams is a string, expected an object",
    ),
    ("version-string", setting("3", "version"), "version is a string, expected the number 3"),
    # unsupported
    ("version-4", setting(4, "version"), "version 4 is not supported (expected 3)"),
    (
        "kdf-argon2",
        setting("argon2id", "crypto", "kdf"),
        "crypto.kdf 'argon2id' is not supported (expected scrypt or pbkdf2)",
    ),
    ("kdf-unquotable", setting("x" * 500, "crypto", "kdf"), "crypto.kdf is not supported"),
    (
        "cipher-gcm",
        setting("aes-256-gcm", "crypto", "cipher"),
        "crypto.cipher 'aes-256-gcm' is not supported (expected aes-128-ctr)",
    ),
    (
        "prf-sha1",
        setting("hmac-sha1", "crypto", "kdfparams", "prf"),
        "crypto.kdfparams.prf 'hmac-sha1' is not supported",
    ),
    # bad hex and sizes
    (
        "ciphertext-not-hex",
        setting("zz" + CIPHERTEXT[2:], "crypto", "ciphertext"),
        "crypto.ciphertext is not hex",
    ),
    (
        "ciphertext-odd",
        setting(CIPHERTEXT[1:], "crypto", "ciphertext"),
        "crypto.ciphertext is not hex",
    ),
    (
        "ciphertext-short",
        setting(CIPHERTEXT[2:], "crypto", "ciphertext"),
        "crypto.ciphertext is 31 bytes, expected 32",
    ),
    ("mac-not-hex", setting("g" * 64, "crypto", "mac"), "crypto.mac is not hex"),
    ("mac-short", setting("00" * 20, "crypto", "mac"), "crypto.mac is 20 bytes, expected 32"),
    (
        "salt-not-hex",
        setting("salt", "crypto", "kdfparams", "salt"),
        "crypto.kdfparams.salt is not hex",
    ),
    (
        "iv-long",
        setting("00" * 17, "crypto", "cipherparams", "iv"),
        "crypto.cipherparams.iv is 17 bytes, expected 16",
    ),
    (
        "iv-spaces",
        setting("00 " * 16, "crypto", "cipherparams", "iv"),
        "crypto.cipherparams.iv is not hex",
    ),
    # impossible numbers
    (
        "dklen-16",
        setting(16, "crypto", "kdfparams", "dklen"),
        "crypto.kdfparams.dklen is 16, expected at least 32",
    ),
    (
        "c-zero",
        setting(0, "crypto", "kdfparams", "c"),
        "crypto.kdfparams.c is 0, expected at least 1",
    ),
    ("c-huge", setting(10**12, "crypto", "kdfparams", "c"), "far more rounds than any wallet"),
]


@adversarial
@pytest.mark.parametrize(
    ("edit", "expected"),
    [(edit, expected) for _, edit, expected in MALFORMED],
    ids=[m[0] for m in MALFORMED],
)
def test_a_malformed_keystore_says_what_is_wrong(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], expected: str, faults: Faults
) -> None:
    keystore = copy.deepcopy(KEYSTORE)
    edit(keystore)
    path = write(tmp_path, keystore)
    crypto = keystore.get("crypto")
    ciphertext = crypto.get("ciphertext") if isinstance(crypto, dict) else None
    message = fails(faults, settings(path), *([ciphertext] if isinstance(ciphertext, str) else []))
    assert message.startswith(f"signer.keystore {path}: ")
    assert expected in message


SCRYPT = make_keystore("scrypt")


@adversarial
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("n", 3, "crypto.kdfparams.n is 3, not a power of 2"),
        ("n", 1, "crypto.kdfparams.n is 1, expected at least 2"),
        ("n", 1 << 40, "crypto.kdfparams n*r*p is"),
        ("r", "8", "crypto.kdfparams.r is a string"),
        ("p", 0, "crypto.kdfparams.p is 0, expected at least 1"),
    ],
)
def test_bad_scrypt_parameters(
    tmp_path: Path, name: str, value: Any, expected: str, faults: Faults
) -> None:
    keystore = copy.deepcopy(SCRYPT)
    keystore["crypto"]["kdfparams"][name] = value
    message = fails(faults, settings(write(tmp_path, keystore)), SCRYPT["crypto"]["ciphertext"])
    assert expected in message


@adversarial
def test_field_names_that_differ_only_in_case(tmp_path: Path, faults: Faults) -> None:
    keystore = copy.deepcopy(KEYSTORE)
    keystore["Crypto"] = keystore["crypto"]
    message = fails(faults, settings(write(tmp_path, keystore)))
    assert "crypto appears twice" in message


# --- decryption ---------------------------------------------------------------------------------


@adversarial
def test_a_wrong_password_may_also_be_a_corrupt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD + "x")
    path = write(tmp_path, KEYSTORE)
    message = fails(faults, settings(path), PASSWORD + "x")
    assert message == (
        f"signer.keystore {path}: could not decrypt: wrong password (from {PASSWORD_ENV}) or "
        "corrupted keystore (the MAC does not match)"
    )


@adversarial
def test_a_corrupt_ciphertext_is_not_only_a_wrong_password(tmp_path: Path, faults: Faults) -> None:
    keystore = copy.deepcopy(KEYSTORE)
    flipped = ("1" if CIPHERTEXT[0] == "0" else "0") + CIPHERTEXT[1:]
    keystore["crypto"]["ciphertext"] = flipped
    message = fails(faults, settings(write(tmp_path, keystore)), flipped)
    assert "wrong password" in message
    assert "or corrupted keystore" in message


@adversarial
def test_the_mac_names_the_password_file(tmp_path: Path, faults: Faults) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("not it\n")
    message = fails(
        faults, settings(write(tmp_path, KEYSTORE), password_file=password_file), "not it"
    )
    assert "wrong password (from signer.password_file) or corrupted keystore" in message


@adversarial
@pytest.mark.parametrize(
    "error", [KeyError("kdf"), TypeError("x"), ValueError("y"), AssertionError()]
)
def test_whatever_decrypt_raises_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, faults: Faults
) -> None:
    def decrypt(keyfile: Any, password: str) -> bytes:
        raise error

    monkeypatch.setattr(Account, "decrypt", staticmethod(decrypt))
    path = write(tmp_path, KEYSTORE)
    message = fails(faults, settings(path))
    assert message == (
        f"signer.keystore {path}: could not decrypt ({type(error).__name__}); is the file corrupt?"
    )


@adversarial
def test_a_key_out_of_the_curves_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    monkeypatch.setattr(Account, "decrypt", staticmethod(lambda keyfile, password: b"\0" * 32))
    message = fails(faults, settings(write(tmp_path, KEYSTORE)))
    assert "decrypts to something that is not a private key" in message


# --- the keystore file itself -------------------------------------------------------------------


@adversarial
def test_keystore_not_found(tmp_path: Path, faults: Faults) -> None:
    path = tmp_path / "missing.json"
    message = fails(faults, settings(path))
    assert message == (
        f"signer.keystore {path}: not found: set signer.keystore to the path of the keystore file"
    )


@adversarial
def test_keystore_is_a_directory(tmp_path: Path, faults: Faults) -> None:
    message = fails(faults, settings(tmp_path))
    assert message == (
        f"signer.keystore {tmp_path}: is a directory: set signer.keystore to the path of the "
        "keystore file"
    )


@adversarial
def test_keystore_not_a_regular_file(tmp_path: Path, faults: Faults) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "is not a regular file" in fails(faults, settings(fifo))


@adversarial
def test_keystore_too_large(tmp_path: Path, faults: Faults) -> None:
    path = write(tmp_path, " " * (2 << 20))
    assert "too large to be the keystore file" in fails(faults, settings(path))


@adversarial
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_keystore_permission_denied(tmp_path: Path, faults: Faults) -> None:
    path = write(tmp_path, KEYSTORE)
    path.chmod(0)
    assert f"signer.keystore {path}: permission denied" in fails(faults, settings(path))


@adversarial
def test_keystore_permission_denied_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    path = write(tmp_path, KEYSTORE)

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    message = fails(faults, settings(path))
    assert message == (
        f"signer.keystore {path}: permission denied: make it readable by the keeper's user"
    )


# --- the password -------------------------------------------------------------------------------


@adversarial
def test_password_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    message = fails(faults, settings(write(tmp_path, KEYSTORE)))
    assert message == (
        f"signer: the keystore needs a password: set {PASSWORD_ENV} or signer.password_file"
    )


@adversarial
def test_password_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "")
    message = fails(faults, settings(write(tmp_path, KEYSTORE)))
    assert message == (
        f"signer: {PASSWORD_ENV} is set but empty: set it to the keystore's password, or set "
        "signer.password_file"
    )


@adversarial
def test_password_file_missing(tmp_path: Path, faults: Faults) -> None:
    password_file = tmp_path / "nope"
    message = fails(faults, settings(write(tmp_path, KEYSTORE), password_file=password_file))
    assert message == (
        f"signer.password_file {password_file}: not found: set signer.password_file to the path "
        "of a file holding the password"
    )


@adversarial
@pytest.mark.parametrize("content", ["", "\n", "\r\n"])
def test_password_file_empty(tmp_path: Path, content: str, faults: Faults) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(content)
    message = fails(faults, settings(write(tmp_path, KEYSTORE), password_file=password_file))
    assert message == (
        f"signer.password_file {password_file}: empty: put the keystore's password in it, on one "
        "line"
    )


@adversarial
def test_password_file_is_a_directory(tmp_path: Path, faults: Faults) -> None:
    password_dir = tmp_path / "secrets"
    password_dir.mkdir()
    message = fails(faults, settings(write(tmp_path, KEYSTORE), password_file=password_dir))
    assert f"signer.password_file {password_dir}: is a directory" in message


# --- a raw key from the environment -------------------------------------------------------------


@pytest.mark.parametrize("value", [KEY, KEY[2:], f"  {KEY.upper()}\n"])
def test_a_raw_key_loads(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(KEY_ENV, value)
    signer = load_signer(settings())
    assert signer is not None
    assert signer.address == ADDRESS


@pytest.mark.parametrize("value", ["", "   "])
def test_no_raw_key_means_no_signer(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(KEY_ENV, value)
    assert load_signer(settings()) is None


@adversarial
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (KEY[:-2], "expected 64 hex digits (32 bytes), with or without 0x, found 62 characters"),
        (KEY + "00", "found 66 characters"),
        (KEY[:-4] + "zzzz", "found characters that are not hex digits"),
        (KEY[2:-1] + " ", "found 63 characters"),
        ("0x" + "00" * 32, "the number is zero or not below the secp256k1 curve order"),
        ("0x" + "ff" * 32, "the number is zero or not below the secp256k1 curve order"),
        ("word " * 12, "found 59 characters"),
    ],
)
def test_a_malformed_raw_key_is_named_never_echoed(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str, faults: Faults
) -> None:
    monkeypatch.setenv(KEY_ENV, value)
    message = fails(faults, settings(), value.strip(), value.strip()[2:-4], value.strip()[4:])
    assert message.startswith(f"{KEY_ENV} does not hold a valid private key: ")
    assert expected in message


# --- through the CLI ----------------------------------------------------------------------------


@adversarial
@pytest.mark.parametrize(
    "command",
    [["deploy-executor"], ["run", "--max-cycles", "1", "--mode", "live"]],
    ids=["deploy-executor", "run-live"],
)
def test_cli_reports_a_malformed_keystore_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    faults: Faults,
) -> None:
    faults.not_applicable(
        "loss", "duplicates", why="no chain: the CLI refuses at the keystore parser"
    )
    keystore = copy.deepcopy(KEYSTORE)
    del keystore["crypto"]["kdf"]
    path = write(tmp_path, keystore)
    config = tmp_path / "config.toml"
    local = (ROOT / "config" / "local.toml").read_text()
    assert "[signer]" not in local
    config.write_text(f"{local}\n[signer]\nkeystore = '{path}'\n")
    monkeypatch.setenv("REBALANCER_KEYSTORE_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)  # a journal, if anything got that far, lands here
    with faults.escaped():  # main answers the ConfigError with exit code 2: nothing may escape
        code = main([command[0], "--config", str(config), *command[1:]])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == (
        f"error: signer.keystore {path}: missing crypto.kdf; is this an Ethereum V3 keystore?\n"
    )
    assert "Traceback" not in out + err
    for secret in secrets():
        assert secret not in out + err
