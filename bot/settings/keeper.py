"""Valuation, the keeper loop and its limits, and the backtest's simulated market."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from bot.settings.base import Section


class ValuationSettings(Section):
    """[valuation]: how holdings are priced, and when a pool's price is not trusted."""

    numeraire: Literal["USD", "ETH"] = "USD"
    """The unit every value is in: "USD" (through `stablecoin`) or "ETH" (through the token with
    weth = true)."""
    stablecoin: str | None = "USDC"
    """With numeraire "USD": the token taken as worth exactly 1 USD (a depeg of it is not
    visible)."""
    twap_window_seconds: int = Field(default=1800, gt=0)
    """TWAP window, seconds: every read also reads the pools this far back to compare the spot
    price with its time-weighted average. The node must keep state that old. Longer windows are
    harder to manipulate and slower to follow real moves."""
    max_twap_deviation: float = Field(default=0.05, gt=0)
    """A pool whose spot price is more than this fraction off its TWAP (|spot/TWAP - 1|; 0.05 =
    5%) is flagged: no trade goes through it, and prices along it are marked."""
    missing_twap: Literal["allow", "refuse"] = "allow"
    """With no TWAP for a pool (a node without the window's old state): "refuse" trades through
    it, or "allow" them on the spot price alone."""
    stale_pool_seconds: int | None = Field(default=None, gt=0)
    """Seconds without a trade after which a pool counts as stale: its TWAP only repeats its last
    price, so the guard is blind there. Unset: never stale."""
    stale_pool: Literal["allow", "refuse"] = "allow"
    """For a stale pool: "refuse" trades through it, or "allow" them."""


class KeeperSettings(Section):
    """[keeper]: the loop, its safety limits, its journal and its metrics."""

    mode: Literal["live", "dry-run", "paper"] | None = None
    """"live" signs and sends; "dry-run" runs each plan on a throw-away fork and sends nothing;
    "paper" fills a virtual portfolio at the quotes. Unset: live when a key is configured, else
    dry-run. `--mode` overrides it."""
    trigger_on: Literal["block", "interval"] = "block"
    """Start a cycle on every new block ("block", polled every poll_seconds) or every
    interval_seconds ("interval")."""
    interval_seconds: float = Field(default=12.0, gt=0)
    """With trigger_on = "interval": seconds from the end of one cycle to the start of the
    next."""
    poll_seconds: float = Field(default=1.0, gt=0)
    """With trigger_on = "block": seconds between checks for a new block."""
    cycle_deadline_seconds: float = Field(default=300.0, gt=0)
    """A cycle still running after this many seconds is cancelled and counts as failed."""
    max_consecutive_failures: int = Field(default=5, ge=1)
    """After this many failed cycles in a row the circuit breaker halts trading until
    `rebalancer resume`."""
    max_consecutive_skips: int = Field(default=10, ge=1)
    """After this many cycles in a row skipped on a data error (a token with no pool to price
    it, a node on another chain), /healthz answers 503 and rebalancer_blind is 1: the keeper is
    running but cannot see. Ordinary skips (inside the band, cooldown) never count."""
    daily_loss_cap: float = Field(default=5_000.0, gt=0)
    """Trading costs and shortfalls in one UTC day, in the numeraire, at which the circuit
    breaker halts trading."""
    journal: Path = Path("rebalancer-journal.sqlite")
    """The SQLite journal of cycles, rebalances and transactions; a relative path is relative to
    the config file."""
    metrics_host: str = "127.0.0.1"
    """The address /metrics and /healthz listen on (127.0.0.1: this machine only)."""
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    """The port /metrics and /healthz listen on (0: any free port); `--metrics-port` overrides
    it."""
    metrics_max_connections: int = Field(default=64, ge=1, le=1024)
    """Connections the metrics server holds open at once; past that the oldest is closed to make
    room. Far below the file-descriptor limit, so the port cannot starve the RPC connections."""
    metrics_read_timeout_seconds: float = Field(default=10.0, gt=0)
    """A metrics connection is closed when a whole request has not arrived this many seconds
    after it opened or after the last answer (idle or trickling clients)."""
    healthz_max_age_seconds: float = Field(default=900.0, gt=0)
    """/healthz answers 503 when the last successful cycle is older than this many seconds."""
    shutdown_timeout_seconds: float = Field(default=60.0, gt=0)
    """After SIGINT/SIGTERM, the cycle in flight gets this many seconds to finish before it is
    cancelled."""
    lot_method: Literal["FIFO", "HIFO"] = "FIFO"
    """Which cost-basis lots a sale closes first, for realized gains: the oldest ("FIFO") or the
    dearest ("HIFO")."""


class BacktestSettings(Section):
    """How `rebalancer backtest` simulates the market from a daily price file."""

    price_columns: dict[str, str] = Field(default_factory=dict)
    """The price file's column for each token (symbol -> column); a token not listed uses the
    column named after its symbol."""
    initial_value: float = Field(default=1_000_000.0, gt=0)
    """The simulated portfolio's starting value, in USD."""
    pool_depth_usd: float = Field(default=10_000_000.0, gt=0)
    """Each side of every simulated pool, in USD; deeper pools mean less price impact."""
    pool_depth_overrides: dict[str, float] = Field(default_factory=dict)
    """Depth per pool ("venue:A/B" -> USD each side), in place of pool_depth_usd."""
    gas_gwei: float = Field(default=30.0, ge=0)
    """The simulated gas price, in gwei, outside the stress windows."""
    stress_gas_gwei: float = Field(default=300.0, ge=0)
    """The simulated gas price, in gwei, inside the stress windows (March 2020, May 2021, May and
    November 2022)."""
    gas_per_rebalance: float = Field(default=600_000, ge=0)
    """The gas one rebalance costs in the sweep engine (a fixed amount)."""
    calendar_days: int = Field(default=30, gt=0)
    """Days between rebalances of the calendar strategy shown alongside the configured one."""
