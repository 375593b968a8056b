"""`rebalancer status`: read the chain once, value the wallet, print a table or JSON."""

from __future__ import annotations

import json
from typing import Any

from bot.chain.connect import rpc_client
from bot.chain.reader import SnapshotReader
from bot.portfolio import Valuation, value_portfolio
from bot.settings import Settings
from bot.types import Snapshot


async def read_and_value(settings: Settings) -> tuple[Snapshot, Valuation]:
    async with rpc_client(settings) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)
        snapshot = await reader.snapshot()
    return snapshot, value_portfolio(snapshot, settings)


def as_json(snapshot: Snapshot, valuation: Valuation) -> dict[str, Any]:
    """Raw amounts as decimal strings (they overflow JSON numbers); analytics as floats."""
    return {
        "block": {
            "number": snapshot.block_number,
            "hash": snapshot.block_hash,
            "timestamp": snapshot.timestamp,
            "base_fee_wei": str(snapshot.base_fee),
        },
        "wallet": snapshot.wallet,
        "numeraire": valuation.numeraire,
        "total_value": valuation.total_value,
        "total_notional": valuation.total_notional,
        "assets": [
            {
                "asset": a.asset,
                "unit": a.unit,
                "raw": str(a.raw),
                "wallet_raw": str(
                    snapshot.eth_balance if a.asset == "ETH" else snapshot.balance(a.asset)
                ),
                "amount": a.amount,
                "in_lp": a.in_lp,
                "price": valuation.prices[a.asset].spot,
                "twap": valuation.prices[a.asset].twap,
                "price_path": list(valuation.prices[a.asset].path),
                "value": a.value,
                "notional": a.notional,
                "weight": a.weight,
            }
            for a in valuation.assets
        ],
        "allocation": [
            {
                "unit": u.unit,
                "members": list(u.members),
                "weight": u.weight,
                "target": u.target,
                "drift_abs": u.drift_abs,
                "drift_rel": u.drift_rel,
            }
            for u in valuation.units
        ],
        "lp_positions": [
            {
                "pool": p.key,
                "liquidity": str(p.liquidity),
                "share": p.share,
                "token0": p.token0,
                "token1": p.token1,
                "amount0": str(p.amount0),
                "amount1": str(p.amount1),
                "value": p.value,
                "hold_value": p.hold_value,
                "il_vs_hold": p.il_vs_hold,
                "il_price_only": p.il_price_only,
            }
            for p in valuation.lp_positions
        ],
        "pools": [
            {
                "pool": p.key,
                "spot": p.spot,
                "twap": p.twap,
                "deviation": p.deviation,
                "flagged": p.flagged,
            }
            for p in valuation.pools.values()
        ],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.2f}%"


def as_table(snapshot: Snapshot, valuation: Valuation) -> str:
    n = valuation.numeraire
    lines = [
        f"wallet {snapshot.wallet} at block {snapshot.block_number} "
        f"(base fee {snapshot.base_fee / 1e9:.2f} gwei)",
        f"total value {valuation.total_value:,.2f} {n}",
        "",
        f"{'asset':<6} {'amount':>18} {'of which LP':>14} {'price':>14} {'value':>16} "
        f"{'weight':>8}",
    ]
    for a in sorted(valuation.assets, key=lambda a: -a.value):
        lines.append(
            f"{a.asset:<6} {a.amount:>18,.6f} {a.in_lp:>14,.4f} "
            f"{valuation.prices[a.asset].spot:>14,.6f} {a.value:>16,.2f} {a.weight * 100:>7.2f}%"
        )
    lines += [
        "",
        f"{'unit':<8} {'members':<18} {'weight':>8} {'target':>8} {'drift':>9} {'rel.':>9}",
    ]
    for u in valuation.units:
        lines.append(
            f"{u.unit:<8} {','.join(u.members):<18} {u.weight * 100:>7.2f}% "
            f"{u.target * 100:>7.2f}% {u.drift_abs * 100:>+8.2f}pp {_pct(u.drift_rel):>9}"
        )
    if valuation.lp_positions:
        lines += ["", "LP positions"]
        for p in valuation.lp_positions:
            lines.append(
                f"  {p.key:<22} share {p.share * 100:.4f}%  value {p.value:,.2f} {n}  "
                f"IL vs hold {_pct(p.il_vs_hold)}  (price-only {_pct(p.il_price_only)})"
            )
    flagged = valuation.flagged_pools
    if flagged:
        lines += ["", "price guard"]
        lines += [f"  {key}: {why}" for key, why in flagged.items()]
    return "\n".join(lines)


def render(snapshot: Snapshot, valuation: Valuation, as_json_output: bool) -> str:
    if as_json_output:
        return json.dumps(as_json(snapshot, valuation), indent=2)
    return as_table(snapshot, valuation)
