"""Frozen data passed between the stages: raw integer amounts, checksummed addresses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

Address = NewType("Address", str)  # EIP-55 checksummed
Raw = int  # an amount in a token's smallest unit (wei, 1e-6 USDC, ...)

NATIVE = "ETH"  # the symbol of the chain's native coin in holdings


@dataclass(frozen=True, slots=True)
class Token:
    symbol: str
    address: Address
    decimals: int
    notional: float = 1.0  # exposure per unit of value: 2.0 for a 2x leveraged token
    weth: bool = False  # the wrapped native coin: priced with native ETH

    def to_units(self, raw: Raw) -> float:
        return float(raw / 10**self.decimals)


@dataclass(frozen=True, slots=True)
class Pool:
    """A configured pool: what the keeper knows before reading the chain."""

    key: str  # "venue:A/B"
    venue: str
    address: Address
    token0: str  # symbols, ordered as the pair orders them (by address)
    token1: str
    fee_bps: int
    factory: Address


@dataclass(frozen=True, slots=True)
class PoolState:
    """One pool at one block, all raw on-chain values."""

    pool: Pool
    reserve0: Raw
    reserve1: Raw
    block_timestamp_last: int
    total_supply: Raw
    k_last: int
    price0_cumulative_last: int
    price1_cumulative_last: int
    fee_on: bool  # the venue's factory has feeTo set
    wallet_lp: Raw

    @property
    def key(self) -> str:
        return self.pool.key


@dataclass(frozen=True, slots=True)
class PoolObservation:
    """A pool's cumulative prices at an earlier block, for the TWAP."""

    key: str
    timestamp: int
    reserve0: Raw
    reserve1: Raw
    block_timestamp_last: int
    price0_cumulative_last: int
    price1_cumulative_last: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the keeper reads, pinned to one block."""

    chain_id: int
    block_number: int
    block_hash: str
    timestamp: int
    base_fee: int
    wallet: Address
    eth_balance: Raw
    balances: tuple[tuple[str, Raw], ...]  # (symbol, raw balance) per configured token
    pools: tuple[PoolState, ...]
    fee_to: tuple[tuple[str, Address], ...]  # (venue, factory.feeTo())
    history: tuple[PoolObservation, ...] = ()  # the same pools `twap_window` earlier
    history_timestamp: int | None = None
    # Holdings of the account that does not trade (the keeper wallet in vault mode): ETH,
    # token symbols and pool keys (LP tokens), raw. Valued, never traded.
    other_holdings: tuple[tuple[str, Raw], ...] = ()

    def balance(self, symbol: str) -> Raw:
        return dict(self.balances)[symbol]

    def pool(self, key: str) -> PoolState:
        for state in self.pools:
            if state.key == key:
                return state
        raise KeyError(key)
