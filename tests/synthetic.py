"""Hand-made snapshots over config/local.toml's tokens and pools, for pure tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.paths import ROOT
from bot.settings import Settings, load_settings
from bot.types import Address, Pool, PoolState, Snapshot

SETTINGS = load_settings(ROOT / "config" / "local.toml")
PRICES = {
    "WETH": 200.0,
    "USDC": 1.0,
    "USDT": 1.0,
    "DAI": 1.0,
    "WBTC": 8000.0,
    "LINK": 4.0,
    "FOT": 4.0,
}
DEPTH = {"uniswap": 10_000_000.0, "sushiswap": 3_000_000.0}  # USD per side
NO_FEE_TO = Address("0x" + "0" * 40)


def with_strategy(settings: Settings = SETTINGS, /, **changes: Any) -> Settings:
    return settings.model_copy(update={"strategy": settings.strategy.model_copy(update=changes)})


def pool_of(settings: Settings, venue: str, a: str, b: str) -> Pool:
    t0, t1 = sorted((a, b), key=lambda s: int(settings.tokens[s].address, 16))
    address = Address(f"0x{abs(hash((venue, a, b))) % 16**40:040x}")
    return Pool(f"{venue}:{a}/{b}", venue, address, t0, t1, 30, Address("0x" + "1" * 40))


def raw(settings: Settings, symbol: str, usd: float, prices: dict[str, float] = PRICES) -> int:
    return int(usd / prices[symbol] * 10 ** settings.tokens[symbol].decimals)


def snapshot(
    holdings_usd: dict[str, float] | None = None,
    settings: Settings = SETTINGS,
    prices: dict[str, float] = PRICES,
    depth: dict[str, float] = DEPTH,
    base_fee: int = 10**9,
    **overrides: Any,
) -> Snapshot:
    """Pools at `prices` with `depth` USD per side; the wallet holds `holdings_usd` (default $1000 each)."""
    holdings = holdings_usd if holdings_usd is not None else dict.fromkeys(settings.tokens, 1000.0)
    states = []
    for spec in settings.pools:
        pool = pool_of(settings, spec.venue, *spec.tokens)
        r0, r1 = (
            raw(settings, pool.token0, depth[spec.venue], prices),
            raw(settings, pool.token1, depth[spec.venue], prices),
        )
        states.append(PoolState(pool, r0, r1, 1000, 10**20, 0, 0, 0, False, 0))
    balances = tuple((s, raw(settings, s, holdings.get(s, 0.0), prices)) for s in settings.tokens)
    base = Snapshot(
        31337,
        100,
        "0xab",
        2000,
        base_fee,
        Address(settings.wallet.address),
        0,
        balances,
        tuple(states),
        (("uniswap", NO_FEE_TO), ("sushiswap", NO_FEE_TO)),
    )
    return replace(base, **overrides)


def weights_portfolio(weights: dict[str, float], total: float = 100_000.0) -> dict[str, float]:
    """Holdings in USD giving these unit weights (eth -> WETH, usd -> USDC)."""
    symbol = {"eth": "WETH", "usd": "USDC"}
    return {symbol.get(unit, unit): w * total for unit, w in weights.items()}
