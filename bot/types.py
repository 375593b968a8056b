"""Frozen data passed between the stages (raw integer amounts, checksummed addresses), from the
snapshot the keeper reads to the plan it carries out, and the units they are counted in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NewType

Address = NewType("Address", str)  # EIP-55 checksummed
Raw = int  # an amount in a token's smallest unit (wei, 1e-6 USDC, ...)

NATIVE = "ETH"  # the symbol of the chain's native coin in holdings
BPS = 10_000  # basis points in a whole
GWEI = 10**9  # wei in a gwei


def to_units(raw: float, decimals: int) -> float:
    """A raw amount in whole units (USDC: 1_500_000 and 6 decimals give 1.5)."""
    return float(raw / 10**decimals)


def to_raw(units: float, decimals: int) -> Raw:
    """Whole units as a raw amount, rounded toward zero (the inverse of `to_units`)."""
    return int(units * 10**decimals)


def slippage_floor(amount: Raw, slippage_bps: float) -> Raw:
    """The least `amount` may come to, `slippage_bps` below it: an action's minimum output."""
    return amount * int(BPS * BPS - slippage_bps * BPS) // (BPS * BPS)


@dataclass(frozen=True, slots=True)
class Token:
    symbol: str
    address: Address
    decimals: int
    notional: float = 1.0  # exposure per unit of value: 2.0 for a 2x leveraged token
    weth: bool = False  # the wrapped native coin: priced with native ETH

    def to_units(self, raw: Raw) -> float:
        return to_units(raw, self.decimals)


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


# --- the plan: the planner's output, which execution carries out ------------------------------
@dataclass(frozen=True, slots=True)
class Swap:
    venue: str
    path: tuple[str, ...]  # token symbols, input first
    pools: tuple[str, ...]  # pool keys, one per hop
    amount_in: int  # raw, leaving the wallet
    expected_out: int  # raw, arriving in the wallet (after any transfer fee)
    min_out: int
    fee_on_transfer: bool  # use the router's *SupportingFeeOnTransferTokens entry point
    gas: int
    value_in: float  # numeraire, at valuation prices
    fee_cost: float
    impact_cost: float
    kind: Literal["swap"] = "swap"

    @property
    def changes(self) -> tuple[tuple[str, int], ...]:
        """The wallet's raw change per token as quoted: what leaves it (negative) first."""
        return (self.path[0], -self.amount_in), (self.path[-1], self.expected_out)


@dataclass(frozen=True, slots=True)
class RemoveLiquidity:
    pool: str
    venue: str
    token0: str  # the pair's order: expected0 / min0 are token0's
    token1: str
    liquidity: int
    expected0: int
    expected1: int
    min0: int
    min1: int
    gas: int
    kind: Literal["remove_liquidity"] = "remove_liquidity"

    @property
    def changes(self) -> tuple[tuple[str, int], ...]:
        """The wallet's raw change per token (the LP token by its pool key) as quoted: what
        leaves it (negative) first."""
        return (
            (self.pool, -self.liquidity),
            (self.token0, self.expected0),
            (self.token1, self.expected1),
        )


@dataclass(frozen=True, slots=True)
class AddLiquidity:
    pool: str
    venue: str
    token0: str  # the pair's order: amount0 / min0 are token0's
    token1: str
    amount0_desired: int
    amount1_desired: int
    amount0: int  # what the router will take
    amount1: int
    min0: int
    min1: int
    expected_liquidity: int
    gas: int
    kind: Literal["add_liquidity"] = "add_liquidity"

    @property
    def changes(self) -> tuple[tuple[str, int], ...]:
        """The wallet's raw change per token (the LP token by its pool key) as quoted: what
        leaves it (negative) first."""
        return (
            (self.token0, -self.amount0),
            (self.token1, -self.amount1),
            (self.pool, self.expected_liquidity),
        )


Action = Swap | RemoveLiquidity | AddLiquidity


@dataclass(frozen=True, slots=True)
class Plan:
    block_number: int
    deadline: int
    actions: tuple[Action, ...]
    gas: int
    gas_price_wei: int
    fee_cost: float
    impact_cost: float
    gas_cost: float
    post_weights: Mapping[str, float]  # per unit, valued at the post-trade pool prices
    post_value: float
    notes: tuple[str, ...] = ()
    post_snapshot: Snapshot | None = None  # the chain as the plan leaves it (pools, balances)

    @property
    def total_cost(self) -> float:
        return self.fee_cost + self.impact_cost + self.gas_cost

    @property
    def swaps(self) -> tuple[Swap, ...]:
        return tuple(a for a in self.actions if isinstance(a, Swap))
