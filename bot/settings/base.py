"""The base of every settings table, the validated types they share, and key redaction."""

from __future__ import annotations

import re
from typing import Annotated, Any

from eth_utils.address import is_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

WEIGHT_TOLERANCE = 1e-9


# A private key is 64 hex digits; an address is 40. A key must never be echoed back in an error.
_KEY_SHAPE = re.compile(r"\s*(?:0[xX])?[0-9a-fA-F]{64}\s*")
_LONGER_THAN_AN_ADDRESS = re.compile(r"(?:0[xX])?[0-9a-fA-F]{41,}")
_NO_KEYS = (
    "never put a key in the config: keep it in a keystore ([signer] keystore), and if this "
    "file was shared, treat the key as exposed"
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _checksummed(value: str) -> str:
    if _KEY_SHAPE.fullmatch(value):
        raise ValueError(f"looks like a private key, not an address; {_NO_KEYS}")
    if not is_address(value):
        shown = repr(value) if len(value) <= 42 else f"a value of {len(value)} characters"
        raise ValueError(f"{shown} is not an Ethereum address (0x and 40 hex digits)")
    return str(to_checksum_address(value))


def _env_name(value: str) -> str:
    if _KEY_SHAPE.fullmatch(value):
        raise ValueError(f"looks like a private key, not a variable's name; {_NO_KEYS}")
    if not _ENV_NAME.fullmatch(value):
        # not echoed: a value put here by mistake may be a password
        raise ValueError("must be the name of an environment variable (letters, digits, _)")
    return value


ChecksumAddress = Annotated[str, AfterValidator(_checksummed)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Fraction01 = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _one_line_descriptions(schema: dict[str, Any]) -> None:
    """Field docstrings wrap at 100 columns; the schema gets each as one line."""
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for prop in properties.values():
            if isinstance(prop, dict) and isinstance(prop.get("description"), str):
                prop["description"] = " ".join(str(prop["description"]).split())


class Section(BaseModel):
    """A table of the config file: unknown keys are errors; values are frozen once loaded."""

    # The docstring under each field is its description in `rebalancer config schema`.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        json_schema_extra=_one_line_descriptions,
    )


def redact(text: str) -> str:
    """`text` with every run of hex digits longer than an address hidden (it may be a key)."""
    return _LONGER_THAN_AN_ADDRESS.sub("<hidden: a long hex string, perhaps a key>", text)
