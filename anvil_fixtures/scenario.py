"""Scenario files: the tokens, venues, pools and wallet of a fixture chain, validated once.

Amounts are in USD at the scenario date's prices; the builder turns them into raw units.
"""

from __future__ import annotations

import tomllib
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.amm import UINT112_MAX
from bot.errors import ConfigError
from bot.paths import SCENARIOS
from bot.prices import PriceTable

Usd = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenSpec(_Strict):
    decimals: int = Field(ge=0, le=36)
    price_column: str  # the dataset column this token's USD price comes from
    transfer_fee_bps: int = Field(default=0, ge=0, lt=10_000)
    approve_through_zero: bool = False  # USDT: a non-zero allowance must be reset to 0 first
    mainnet: Address | None = None  # where mirror mode places it
    weth: bool = False  # deployed as the real WETH9, not a FixtureToken


class VenueSpec(_Strict):
    protocol_fee: bool = False  # factory.feeTo set: the pairs mint 1/6 of fee growth to it
    mainnet_factory: Address | None = None
    mainnet_router: Address | None = None


class PoolSpec(_Strict):
    venue: str
    tokens: tuple[str, str]
    depth_usd: Usd  # USD value of each side's reserve

    @property
    def key(self) -> str:
        return f"{self.venue}:{self.tokens[0]}/{self.tokens[1]}"


class LpSpec(_Strict):
    pool: str  # "venue:A/B", as PoolSpec.key
    usd: Usd


class WalletSpec(_Strict):
    eth: Usd  # native ETH, in ETH (gas money and holdings)
    tokens_usd: dict[str, Usd] = Field(default_factory=dict)
    lp: tuple[LpSpec, ...] = ()


class Scenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_-]+$")
    description: str = ""
    date: date
    chain_id: int = Field(default=31337, gt=0)
    tokens: dict[str, TokenSpec]
    venues: dict[str, VenueSpec]
    pools: tuple[PoolSpec, ...]
    wallet: WalletSpec
    warmup_trades: int = Field(default=4, ge=0)  # round trips that leave a pending protocol fee

    @field_validator("tokens")
    @classmethod
    def _one_weth(cls, tokens: dict[str, TokenSpec]) -> dict[str, TokenSpec]:
        wrapped = [symbol for symbol, spec in tokens.items() if spec.weth]
        if len(wrapped) != 1:
            raise ValueError(f"exactly one token must have weth = true, found {wrapped or 'none'}")
        return tokens

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        seen: set[tuple[str, frozenset[str]]] = set()
        for index, pool in enumerate(self.pools):
            where = f"pools[{index}]"
            if pool.venue not in self.venues:
                raise ValueError(
                    f"{where}.venue: unknown venue {pool.venue!r} (known: {', '.join(self.venues)})"
                )
            for symbol in pool.tokens:
                if symbol not in self.tokens:
                    raise ValueError(
                        f"{where}.tokens: unknown token {symbol!r} "
                        f"(known: {', '.join(self.tokens)})"
                    )
            if pool.tokens[0] == pool.tokens[1]:
                raise ValueError(f"{where}.tokens: a pool needs two different tokens")
            identity = (pool.venue, frozenset(pool.tokens))
            if identity in seen:
                raise ValueError(
                    f"{where}: duplicate pool {pool.key} (a venue has one pair per token pair)"
                )
            seen.add(identity)
        pool_keys = {self._canonical(pool.key) for pool in self.pools}
        for index, lp in enumerate(self.wallet.lp):
            if self._canonical(lp.pool) not in pool_keys:
                raise ValueError(f"wallet.lp[{index}].pool: no pool {lp.pool!r} in this scenario")
        for symbol in self.wallet.tokens_usd:
            if symbol not in self.tokens:
                raise ValueError(f"wallet.tokens_usd.{symbol}: unknown token")
        return self

    @staticmethod
    def _canonical(key: str) -> tuple[str, frozenset[str]]:
        venue, _, pair = key.partition(":")
        return venue, frozenset(pair.split("/"))

    def pool_for(self, key: str) -> PoolSpec:
        wanted = self._canonical(key)
        return next(pool for pool in self.pools if self._canonical(pool.key) == wanted)

    def weth_symbol(self) -> str:
        return next(symbol for symbol, spec in self.tokens.items() if spec.weth)

    def usd_prices(self, prices: PriceTable) -> dict[str, Fraction]:
        """Each token's USD price on the scenario date, exact as written in the dataset."""
        out: dict[str, Fraction] = {}
        for symbol, spec in self.tokens.items():
            try:
                out[symbol] = Fraction(str(prices.price(self.date, spec.price_column)))
            except ConfigError as err:
                raise ConfigError(
                    f"scenario {self.name}: tokens.{symbol}.price_column: {err}"
                ) from None
        return out

    def raw_amount(self, symbol: str, usd: float, prices: dict[str, Fraction]) -> int:
        return int(Fraction(str(usd)) / prices[symbol] * 10 ** self.tokens[symbol].decimals)

    def pool_reserves(self, prices: dict[str, Fraction]) -> dict[str, tuple[int, int]]:
        """Raw reserves of every pool (in the order of its `tokens`), range-checked."""
        out: dict[str, tuple[int, int]] = {}
        for index, pool in enumerate(self.pools):
            amounts = tuple(
                self.raw_amount(symbol, pool.depth_usd, prices) for symbol in pool.tokens
            )
            for symbol, amount in zip(pool.tokens, amounts, strict=True):
                if amount <= 0:
                    raise ConfigError(
                        f"scenario {self.name}: pools[{index}] ({pool.key}): the {symbol} reserve "
                        "rounds to zero: raise depth_usd"
                    )
                if amount > UINT112_MAX:
                    raise ConfigError(
                        f"scenario {self.name}: pools[{index}] ({pool.key}): the {symbol} reserve "
                        f"{amount} overflows uint112 (max {UINT112_MAX}): lower depth_usd"
                    )
            out[pool.key] = (amounts[0], amounts[1])
        return out


def scenario_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        return candidate
    return SCENARIOS / f"{name_or_path}.toml"


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by name (anvil_fixtures/scenarios/NAME.toml) or by path to a TOML file."""
    path = scenario_path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.toml")))
        raise ConfigError(f"scenario {name_or_path!r} not found (known: {known})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{path}: {_describe(err)}") from None


def _describe(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{field}: {problem['msg']}")
    return "; ".join(lines)
