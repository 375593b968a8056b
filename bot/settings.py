"""Settings: one TOML file plus REBALANCER_<SECTION>__<KEY> environment overrides.

Loaded and validated once, then frozen. Unknown keys are errors, addresses must be valid and are
checksummed, target weights must sum to 1, and every error names its field (a missing one: the
TOML key and the variable that set it) without quoting anything shaped like a private key. The
docstring under each field is its description in `rebalancer config schema`.
"""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from eth_utils.address import is_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.errors import ConfigError
from bot.types import NATIVE

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


class RetrySettings(Section):
    """[chain.retry]: how a failed JSON-RPC request is retried on one endpoint before the next."""

    attempts: int = Field(default=3, ge=1, le=10)
    """Tries per request on one endpoint (timeouts, HTTP 408/425/429/5xx); then the next
    endpoint in chain.rpc_urls is tried."""
    backoff_seconds: float = Field(default=0.2, ge=0)
    """Seconds before the first retry; later waits grow by backoff_multiplier."""
    backoff_multiplier: float = Field(default=2.0, ge=1)
    """Each wait between retries is this many times the previous one (1: constant waits)."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds one HTTP request may take in all before it counts as failed. Raise it for a slow
    or distant node."""


class ChainSettings(Section):
    """[chain]: the chain and the JSON-RPC endpoints the keeper reads and sends through."""

    rpc_urls: list[str] = Field(min_length=1)
    """JSON-RPC endpoints, tried in order (the next one when one fails); each must support
    eth_call state overrides. `--rpc-url` or REBALANCER_RPC_URL replaces the list. URLs may hold
    API keys: logs and errors show only scheme, host and port."""
    chain_id: int = Field(gt=0)
    """The chain's id (1: Ethereum mainnet, 31337: a local anvil); every endpoint is checked
    against it before use."""
    max_lag_blocks: int = Field(default=5, ge=0)
    """An endpoint whose head is more than this many blocks behind the others' is not used."""
    block_time_seconds: float = Field(default=12.0, gt=0)
    """Seconds per block (12 on Ethereum mainnet), to find the block one TWAP window back."""
    retry: RetrySettings = RetrySettings()
    """How a failed request is retried ([chain.retry])."""


class WalletSettings(Section):
    """[wallet]: the account whose holdings the keeper values and rebalances."""

    address: ChecksumAddress
    """The keeper wallet's address (0x and 40 hex digits, checksummed on load): never its
    private key, which comes from [signer]. Or set REBALANCER_WALLET__ADDRESS."""


class TokenSettings(Section):
    """[tokens.SYMBOL]: an ERC-20 token the keeper values and trades, under its symbol."""

    address: ChecksumAddress
    """The token contract's address."""
    decimals: int = Field(ge=0, le=36)
    """The token's decimals() (USDC 6, WBTC 8, most tokens 18); checked against the contract at
    start."""
    notional: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """Exposure per unit of market value, for weights: 2.0 for a 2x leveraged token, 1 for an
    ordinary token."""
    weth: bool = False
    """true for the wrapped native token (WETH): it prices native ETH, which targets and buckets
    may then name "ETH". At most one token."""
    transfer_fee_bps: int = Field(default=0, ge=0, lt=10_000)
    """Share of every transfer the token itself takes, in basis points (100 = 1%); such a token
    is quoted by what arrives. 0 for an ordinary token."""
    approve_through_zero: bool = False
    """true for a token (like USDT) whose non-zero allowance must be set to 0 before it can be
    changed."""


class VenueSettings(Section):
    """[venues.NAME]: a Uniswap V2-compatible exchange (a factory and its Router02)."""

    factory: ChecksumAddress
    """The venue's factory; pools without an address are found with its getPair."""
    router: ChecksumAddress
    """The venue's Router02, which the sequential route calls."""
    fee_bps: int = Field(default=30, ge=0, lt=10_000)
    """Swap fee in basis points (30 = 0.3%, as on Uniswap V2 and SushiSwap); quotes use it, so
    it must match the pairs' code."""


class PoolSettings(Section):
    """One entry of `pools`: a pair the keeper reads, values with and trades through."""

    venue: str
    """The venue's name (a [venues.NAME] table)."""
    tokens: tuple[str, str]
    """The pair's two token symbols (configured tokens); the pool is named "venue:A/B"."""
    address: ChecksumAddress | None = None
    """The pair's address; when absent it is looked up with the factory's getPair at start."""

    @property
    def key(self) -> str:
        return f"{self.venue}:{self.tokens[0]}/{self.tokens[1]}"


class LpEntry(Section):
    """What an LP position was opened with, for its impermanent loss against holding."""

    pool: str
    """The position's pool, as "venue:A/B" (a configured pool)."""
    amount0: int = Field(gt=0)
    """Amount of the pair's token0 (the token with the lower address) deposited, raw (in the
    token's smallest unit)."""
    amount1: int = Field(gt=0)
    """Amount of the pair's token1 deposited, raw (in the token's smallest unit)."""


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


class PortfolioSettings(Section):
    """Targets by allocation unit: a bucket name, or an asset symbol that is in no bucket."""

    targets: dict[str, Fraction01]
    """Target weight per allocation unit (a bucket name, or a token symbol in no bucket; "ETH" is
    the native coin), as fractions of portfolio value that sum to 1."""
    buckets: dict[str, list[str]] = Field(default_factory=dict)
    """Correlated assets held to one target: bucket name -> member symbols (for example usd =
    ["USDC", "USDT", "DAI"]). An asset is in one bucket at most."""
    lp_entries: list[LpEntry] = Field(default_factory=list)
    """What each LP position was opened with ([[portfolio.lp_entries]]), for its impermanent
    loss; positions not listed are valued without it."""
    lp_targets: dict[str, Fraction01] = Field(default_factory=dict)
    """Share of portfolio value to keep in an LP position ("venue:A/B" -> fraction); its
    underlying still counts toward the asset targets. Positions not listed are left alone."""
    lp_band: float = Field(default=0.02, gt=0, le=1)
    """An LP position is removed or topped up only when its share of value is more than this
    off its lp_target (0.02 = 2 percentage points)."""


class VolatilityBands(Section):
    """Scale band widths by realized volatility of the smoothed price (crypto needs wider bands)."""

    enabled: bool = False
    """Scale every unit's band by its realized volatility; false: fixed bands."""
    reference_volatility: float = Field(default=0.6, gt=0)
    """Annualised volatility (0.6 = 60%) at which a band keeps its configured width; the width
    is multiplied by realized volatility / this, within floor and cap."""
    floor: float = Field(default=0.5, gt=0)
    """The smallest multiplier of a band's width."""
    cap: float = Field(default=3.0, gt=0)
    """The largest multiplier of a band's width."""
    smoothing: float = Field(default=0.3, gt=0, le=1)
    """EMA weight of the newest price before volatility is measured (1: no smoothing); lower
    values keep a passing quote from widening the bands by itself."""
    min_observations: int = Field(default=10, ge=3)
    """Price points needed before bands are scaled (one is kept per day, or per window_seconds /
    30 for a window under 30 days); until then they keep their configured width."""
    window_seconds: int = Field(default=30 * 86_400, gt=0)
    """How far back realized volatility is measured, in seconds (2592000: 30 days). The keeper
    and the backtest keep this much price history, one point per UTC day (per window_seconds /
    30 under 30 days), so that bands mean the same live and in the backtest."""


class CostGate(Section):
    """Trade only when the estimated benefit beats the plan's cost (strategies/cost_gate.py)."""

    enabled: bool = True
    """Refuse a rebalance whose estimated benefit is under min_benefit_ratio x its cost (gas,
    swap fees and price impact)."""
    benefit_model: Literal["tracking_var", "linear"] = "tracking_var"
    """How the benefit is estimated: "tracking_var" (the value at risk of the drift, before minus
    after the plan) or "linear" (value_per_drift per unit of drift removed)."""
    horizon_days: float = Field(default=30, gt=0)
    """tracking_var: the horizon of the value at risk, in days; a longer one values a correction
    more."""
    z_score: float = Field(default=1.65, gt=0)
    """tracking_var: one-sided confidence of the value at risk, as a z-score (1.65: 95%, 2.33:
    99%)."""
    default_volatility: float = Field(default=0.8, ge=0)
    """tracking_var: annualised volatility (0.8 = 80%) of every unit not listed in
    `volatility`."""
    volatility: dict[str, float] = Field(default_factory=dict)
    """tracking_var: annualised volatility per allocation unit (for example usd = 0.02)."""
    value_per_drift: float = Field(default=0.01, ge=0)
    """linear: the benefit is portfolio value x this x the total absolute drift removed (drift
    in weight fractions)."""
    min_benefit_ratio: float = Field(default=1.0, gt=0)
    """A rebalance goes ahead only when its benefit is at least this many times its cost."""


class Caps(Section):
    """[strategy.caps]: limits on how much a rebalance may trade."""

    max_turnover_fraction: float = Field(default=0.5, gt=0, le=2)
    """The most one rebalance may buy, as a fraction of portfolio value; a larger plan is
    scaled down."""
    max_daily_turnover_fraction: float = Field(default=1.0, gt=0)
    """The most all rebalances of one UTC day may buy, as a fraction of portfolio value."""
    max_price_impact_bps: float = Field(default=100, gt=0)
    """The largest price impact one trade may have, in basis points (100 = 1%); a larger trade
    is cut to the largest size within it."""


class StrategySettings(Section):
    """[strategy]: when to rebalance, and how far."""

    trigger: Literal["threshold", "calendar", "hybrid"] = "hybrid"
    """"threshold": act whenever a unit leaves its band (checked every cycle); "calendar": act
    on the schedule whatever the drift; "hybrid": check on the schedule, act only on a breach."""
    interval_seconds: int | None = Field(default=86_400, gt=0)
    """The calendar and hybrid schedule: seconds between evaluations (86400: daily). Unused by
    the threshold trigger and when `cron` is set."""
    cron: str | None = None
    """The schedule as a cron expression in UTC (for example "0 12 * * 1": Mondays at 12:00);
    replaces interval_seconds when set."""
    band: Literal["absolute", "relative"] = "absolute"
    """How band widths read: "absolute" in weight (0.05 = 5 percentage points either side of
    the target), "relative" as a fraction of the unit's target (0.2 = 20% of it)."""
    band_width: float = Field(default=0.05, gt=0)
    """How far a unit's weight may drift from its target before it breaches (read per `band`)."""
    band_overrides: dict[str, float] = Field(default_factory=dict)
    """Band width per allocation unit, in place of band_width (for example LINK = 0.02)."""
    deadband: float = Field(default=0.005, ge=0, lt=1)
    """A unit whose weight would move by less than this (fraction of portfolio value) is not
    traded."""
    min_trade_value: float = Field(default=0.0, ge=0)
    """The smallest trade, in the numeraire; smaller unit moves are dropped. The larger of this
    and min_trade_fraction x value applies."""
    min_trade_fraction: float = Field(default=0.001, ge=0, lt=1)
    """The smallest trade as a fraction of portfolio value (0.001 = 0.1%)."""
    cooldown_seconds: int = Field(default=3_600, ge=0)
    """The least time between two rebalances, in seconds."""
    rebalance_to: Literal["target", "band_edge", "partial"] = "target"
    """How far a rebalance goes: "target" (back to target), "band_edge" (breached units to the
    nearest edge of their band) or "partial" (partial_fraction of each unit's drift)."""
    partial_fraction: float = Field(default=0.5, gt=0, le=1)
    """With rebalance_to = "partial": the fraction of the drift a rebalance removes."""
    volatility_bands: VolatilityBands = VolatilityBands()
    """Band widths scaled by realized volatility ([strategy.volatility_bands])."""
    cost_gate: CostGate = CostGate()
    """Benefit against cost before any trade ([strategy.cost_gate])."""
    caps: Caps = Caps()
    """Turnover and price-impact limits ([strategy.caps])."""

    @model_validator(mode="after")
    def _schedule(self) -> StrategySettings:
        if self.cron is not None:
            from cronsim import CronSim, CronSimError

            try:
                CronSim(self.cron, datetime.now(UTC))
            except CronSimError as err:
                raise ValueError(f"cron: {self.cron!r} is not a cron expression ({err})") from None
        elif self.trigger != "threshold" and self.interval_seconds is None:
            raise ValueError(
                f"interval_seconds or cron: the {self.trigger} trigger needs a schedule"
            )
        return self

    def width(self, unit: str) -> float:
        return self.band_overrides.get(unit, self.band_width)


class ExecutionSettings(Section):
    """[execution]: how a plan is routed, priced, sent and seen through."""

    slippage_bps: float = Field(default=50, ge=0, lt=10_000)
    """Every action's minimum output is its quote less this, in basis points (50 = 0.5%); an
    action that would get less reverts. Wider: fewer reverts in a busy market; narrower: less
    room for a sandwich."""
    deadline_seconds: int = Field(default=300, gt=0)
    """Seconds after planning past which the plan's transactions revert instead of executing
    on stale prices."""
    hubs: list[str] = Field(default_factory=lambda: ["WETH", "USDC"])
    """Tokens a route may pass through between the one sold and the one bought (configured
    symbols; tokens with a transfer fee are skipped)."""
    max_hops: int = Field(default=3, ge=1, le=4)
    """The most pools one route may pass through: 1 direct only, 2 through one hub, 3 through
    two."""
    priority_fee_gwei: float = Field(default=1.0, ge=0)
    """The least tip (priority fee per gas), in gwei; the planner also prices gas at the base
    fee plus this."""
    split_venues: bool = True
    """Also try splitting a direct trade across venues at equal marginal prices (closed form),
    and keep it when it beats the chunked routing."""
    route: Literal["atomic", "sequential"] = "sequential"
    """How a plan goes on chain: "sequential" (Router02 calls in order, each with its
    approvals) or "atomic" (the whole plan in one transaction through the executor)."""
    executor: ChecksumAddress | None = None
    """The address of your RebalanceExecutor (`rebalancer deploy-executor`); required by
    route = "atomic"."""
    executor_mode: Literal["vault", "wallet"] = "wallet"
    """"wallet": the executor pulls exact approved amounts from the wallet and hands everything
    back; "vault": the executor holds the portfolio (no approvals per rebalance)."""
    approval: Literal["exact", "capped"] = "exact"
    """Sequential route: "exact" approves just what an action spends; "capped" approves up to
    approval_cap x that, saving approvals on later rebalances."""
    approval_cap: float = Field(default=2.0, ge=1)
    """With approval = "capped": the allowance as a multiple of the amount needed."""
    fee_percentile: float = Field(default=20, ge=0, le=100)
    """The tip is the median over recent blocks of this percentile of their tips
    (eth_feeHistory); higher lands sooner and costs more."""
    fee_history_blocks: int = Field(default=10, ge=1, le=1024)
    """How many recent blocks eth_feeHistory looks at for the tip."""
    max_fee_gwei: float = Field(default=300, gt=0)
    """Fee cap per gas, in gwei: nothing is signed above it, and when the base fee plus tip
    exceeds it the rebalance waits."""
    max_gas_cost: float = Field(default=500, gt=0)
    """The most one rebalance's gas may cost, in the numeraire (at the signed max fee); above it
    the rebalance waits."""
    gas_limit_margin: float = Field(default=1.25, ge=1)
    """Each transaction's gas limit is its estimated gas times this."""
    confirmations: int = Field(default=2, ge=1)
    """Blocks, its own included, before a mined transaction counts as final (its block hash is
    re-checked, so a reorg is followed). 1 on a chain without reorgs."""
    stuck_blocks: int = Field(default=3, ge=1)
    """A transaction still pending this many blocks after it was sent is replaced at the same
    nonce with higher fees."""
    replacement_bump: float = Field(default=0.125, ge=0.1)
    """How much a replacement raises both fee fields, as a fraction (0.125 = 12.5%); nodes
    refuse replacements under 10%."""
    poll_seconds: float = Field(default=1.0, gt=0)
    """Seconds between checks for receipts and new blocks while a transaction or a bundle is
    awaited."""
    receipt_timeout_seconds: float = Field(default=600, gt=0)
    """Seconds to wait for a sent transaction to be final; after that the cycle fails, and the
    transaction stays in the journal to be settled on a later start."""
    private_rpc_url: str | None = None
    """An endpoint that keeps transactions out of the public mempool; when set, transactions go
    only there (unless private_fallback_to_public)."""
    private_fallback_to_public: bool = False
    """Send through the public endpoint when private_rpc_url fails (exposing the trade to the
    public mempool)."""
    halt_on_shortfall: bool = True
    """Halt when a mined action delivered less than its minimum, or had no effect (a wrong router
    address, a token that does not transfer): a person should look before the next trade."""
    relay_url: str | None = None
    """A bundle relay (eth_callBundle / eth_sendBundle): when set, a plan goes as one bundle that
    lands in one block or not at all."""

    @model_validator(mode="after")
    def _atomic_needs_executor(self) -> ExecutionSettings:
        if self.route == "atomic" and self.executor is None:
            raise ValueError(
                "executor: the atomic route needs an executor address (deploy one with "
                "`rebalancer deploy-executor`)"
            )
        return self


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


class SignerSettings(Section):
    """Where the key comes from. The key and the password themselves never go in this file."""

    keystore: Path | None = None
    """An eth-account v3 JSON keystore (as geth and Foundry write) holding the keeper's key.
    Unset: the raw key in the key_env variable, if any; with no key the keeper runs dry."""
    password_file: Path | None = None
    """A file holding the keystore's password; unset: the password_env variable."""
    password_env: EnvName = "REBALANCER_KEYSTORE_PASSWORD"  # noqa: S105 (a variable's name)
    """The name of the environment variable holding the keystore's password."""
    key_env: EnvName = "REBALANCER_PRIVATE_KEY"
    """The name of the environment variable holding a raw private key (for development)."""


class Settings(BaseSettings):
    """The keeper's configuration: one TOML file plus REBALANCER_<SECTION>__<KEY> variables."""

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="REBALANCER_",
        env_nested_delimiter="__",
        nested_model_default_partial_update=True,
        use_attribute_docstrings=True,
        json_schema_extra=_one_line_descriptions,
    )
    _toml_path: ClassVar[Path | None] = None

    chain: ChainSettings
    """The chain and its JSON-RPC endpoints ([chain])."""
    wallet: WalletSettings
    """The keeper wallet ([wallet] address, or REBALANCER_WALLET__ADDRESS)."""
    tokens: dict[str, TokenSettings]
    """The tokens the keeper values and trades, by symbol ([tokens.SYMBOL])."""
    venues: dict[str, VenueSettings]
    """The Uniswap V2-compatible exchanges, by name ([venues.NAME])."""
    pools: list[PoolSettings] = Field(min_length=1)
    """The pools the keeper reads, values with and trades through (top-level `pools`)."""
    valuation: ValuationSettings = ValuationSettings()
    """Pricing and the TWAP price guard ([valuation])."""
    portfolio: PortfolioSettings
    """Target weights, buckets and LP positions ([portfolio])."""
    strategy: StrategySettings = StrategySettings()
    """When to rebalance and how far ([strategy])."""
    execution: ExecutionSettings = ExecutionSettings()
    """Routing, fees and transaction handling ([execution])."""
    signer: SignerSettings = SignerSettings()
    """Where the signing key comes from ([signer]); never the key itself."""
    keeper: KeeperSettings = KeeperSettings()
    """The keeper loop, safety limits, journal and metrics ([keeper])."""
    backtest: BacktestSettings = BacktestSettings()
    """The backtest's simulated market ([backtest])."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_path)
        return init_settings, env_settings, toml

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        symbols = set(self.tokens)
        if NATIVE in symbols:
            raise ValueError(
                f"tokens.{NATIVE}: the native coin is implicit; configure WETH instead"
            )
        weth = [s for s, t in self.tokens.items() if t.weth]
        if len(weth) > 1:
            raise ValueError(f"tokens: only one token may have weth = true, found {weth}")
        seen: set[tuple[str, frozenset[str]]] = set()
        for i, pool in enumerate(self.pools):
            if pool.venue not in self.venues:
                raise ValueError(f"pools[{i}].venue: unknown venue {pool.venue!r}")
            for symbol in pool.tokens:
                if symbol not in symbols:
                    raise ValueError(f"pools[{i}].tokens: unknown token {symbol!r}")
            identity = (pool.venue, frozenset(pool.tokens))
            if identity in seen or pool.tokens[0] == pool.tokens[1]:
                raise ValueError(f"pools[{i}]: duplicate or degenerate pool {pool.key}")
            seen.add(identity)
        valuation = self.valuation
        if valuation.numeraire == "USD" and valuation.stablecoin not in symbols:
            raise ValueError(
                f"valuation.stablecoin: {valuation.stablecoin!r} is not a configured token"
            )
        if valuation.numeraire == "ETH" and not weth:
            raise ValueError("valuation.numeraire: ETH needs a token with weth = true")
        self._check_portfolio(symbols | {NATIVE} if weth else symbols)
        self._check_strategy()
        return self

    def _check_strategy(self) -> None:
        strategy = self.strategy
        pooled = {symbol for pool in self.pools for symbol in pool.tokens}
        weth = self.weth_symbol()
        for unit, target in self.portfolio.targets.items():
            members = self.portfolio.buckets.get(unit, [unit])
            tradable = [m for m in members if m in pooled or (m == NATIVE and weth in pooled)]
            if target > 0 and not tradable:
                raise ValueError(
                    f"portfolio.targets.{unit}: no configured pool trades "
                    f"{' or '.join(members)}, so the bot could never reach this target"
                )
        for unit in strategy.band_overrides:
            if unit not in self.portfolio.targets:
                raise ValueError(f"strategy.band_overrides.{unit}: not a unit in portfolio.targets")
        for unit, target in self.portfolio.targets.items():
            width = strategy.width(unit)
            field = (
                f"strategy.band_overrides.{unit}"
                if unit in strategy.band_overrides
                else "strategy.band_width"
            )
            if strategy.band == "relative" and width >= 1:
                raise ValueError(f"{field}: a relative band of {width} lets {unit} reach 0")
            edge = width if strategy.band == "absolute" else width * target
            if target > 0 and edge < strategy.deadband:
                raise ValueError(
                    f"{field}: a band of {width} ({edge:.4f} of the portfolio) is narrower than "
                    f"strategy.deadband {strategy.deadband}: a breach of {unit} could never be "
                    "traded back; widen the band or narrow the deadband"
                )
            if strategy.band == "absolute" and 0 < target <= width:
                raise ValueError(
                    f"{field}: a band of {width} is wider than the target of {unit} ({target}) "
                    "allows: the weight could fall to 0 without a breach; narrow it for this unit"
                )
        for hub in self.execution.hubs:
            if hub not in self.tokens:
                raise ValueError(f"execution.hubs: {hub!r} is not a configured token")
        keys = {pool.key for pool in self.pools} | {
            f"{p.venue}:{p.tokens[1]}/{p.tokens[0]}" for p in self.pools
        }
        for key in self.portfolio.lp_targets:
            if key not in keys:
                raise ValueError(f"portfolio.lp_targets.{key}: no configured pool {key!r}")

    def _check_portfolio(self, assets: set[str]) -> None:
        portfolio = self.portfolio
        member_of: dict[str, str] = {}
        for bucket, members in portfolio.buckets.items():
            if bucket in assets:
                raise ValueError(
                    f"portfolio.buckets.{bucket}: a bucket cannot share a token's name"
                )
            if not members:
                raise ValueError(f"portfolio.buckets.{bucket}: a bucket needs members")
            for member in members:
                if member not in assets:
                    raise ValueError(
                        f"portfolio.buckets.{bucket}: member {member!r} is not a configured token"
                    )
                if member in member_of:
                    raise ValueError(
                        f"portfolio.buckets.{bucket}: {member} is already in bucket "
                        f"{member_of[member]}"
                    )
                member_of[member] = bucket
        for unit in portfolio.targets:
            if unit in member_of:
                raise ValueError(
                    f"portfolio.targets.{unit}: {unit} is in bucket {member_of[unit]}; "
                    "set the target on the bucket"
                )
            if unit not in assets and unit not in portfolio.buckets:
                raise ValueError(f"portfolio.targets.{unit}: not a configured token or bucket")
        total = math.fsum(portfolio.targets.values())
        if abs(total - 1) > WEIGHT_TOLERANCE:
            raise ValueError(f"portfolio.targets: weights sum to {total!r}, they must sum to 1")
        keys = {pool.key for pool in self.pools} | {
            f"{p.venue}:{p.tokens[1]}/{p.tokens[0]}" for p in self.pools
        }
        for i, entry in enumerate(portfolio.lp_entries):
            if entry.pool not in keys:
                raise ValueError(
                    f"portfolio.lp_entries[{i}].pool: no configured pool {entry.pool!r}"
                )

    # --- derived views --------------------------------------------------------------------
    def unit_of(self, asset: str) -> str:
        """The allocation unit an asset counts toward: its bucket, or itself."""
        for bucket, members in self.portfolio.buckets.items():
            if asset in members:
                return bucket
        return asset

    def weth_symbol(self) -> str | None:
        return next((s for s, t in self.tokens.items() if t.weth), None)

    def numeraire_token(self) -> str:
        """The token whose price is 1 in the numeraire."""
        if self.valuation.numeraire == "ETH":
            weth = self.weth_symbol()
            assert weth is not None  # checked by the validator
            return weth
        assert self.valuation.stablecoin is not None
        return self.valuation.stablecoin


def load_settings(path: str | Path, *, rpc_url: str | None = None) -> Settings:
    """Settings from a TOML file and the environment; `rpc_url` (or REBALANCER_RPC_URL) wins.

    A ConfigError names each bad field and, for a missing one, the TOML key and the environment
    variable that set it. It never repeats a value that could be a private key, and it carries no
    ValidationError (whose text and context hold the input values).
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {file} not found")
    overrides: dict[str, Any] = {}
    rpc = rpc_url or os.environ.get("REBALANCER_RPC_URL")
    Settings._toml_path = file
    try:
        settings = Settings()
        if rpc:
            chain = settings.chain.model_copy(update={"rpc_urls": [rpc]})
            overrides["chain"] = chain
            settings = settings.model_copy(update=overrides)
        return settings
    except ValidationError as err:
        problem = describe(err)
    except ValueError as err:  # a TOML syntax error, or an environment value that is not JSON
        problem = str(err)
    finally:
        Settings._toml_path = None
    raise ConfigError(f"{file}: {redact(problem)}")  # outside the handler: no chained input


def redact(text: str) -> str:
    """`text` with every run of hex digits longer than an address hidden (it may be a key)."""
    return _LONGER_THAN_AN_ADDRESS.sub("<hidden: a long hex string, perhaps a key>", text)


def describe(err: ValidationError) -> str:
    """Each problem as "field: what is wrong" (a missing field: how to set it); no input values."""
    problems = []
    for problem in err.errors(include_url=False, include_input=False):
        loc = tuple(problem["loc"])
        field = _dotted(loc)
        if problem["type"] == "missing":
            message = how_to_set(loc)
        else:
            message = problem["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def how_to_set(loc: tuple[int | str, ...]) -> str:
    """For a missing field: the TOML key (and, where one works, the environment variable)."""
    found = _type_at(loc)
    if found is None:
        return "required"
    leaves = _required_leaves(loc, *found)
    if not leaves:
        return "required"
    in_file = " and ".join(_toml_name(path, tp) for path, tp, _ in leaves)
    hint = f"required: set {in_file} in the file"
    if all(env for _, _, env in leaves):
        names = " and ".join(_env_var(path, tp) for path, tp, _ in leaves)
        hint += f", or {names} in the environment"
    return hint


def _unwrap(tp: Any) -> Any:
    """`X` from `Annotated[X, ...]` and `X | None`."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _type_at(loc: tuple[int | str, ...]) -> tuple[Any, bool] | None:
    """The type at `loc` in Settings, and whether only model fields lead there (env-settable)."""
    tp: Any = Settings
    env = True
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if _is_model(tp) and isinstance(part, str) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        elif origin is dict:
            tp, env = get_args(tp)[1], False
        elif origin is list:
            tp, env = get_args(tp)[0], False
        elif origin is tuple and isinstance(part, int) and part < len(get_args(tp)):
            tp, env = get_args(tp)[part], False
        else:
            return None
    return tp, env


def _required_leaves(
    path: tuple[int | str, ...], tp: Any, env: bool
) -> list[tuple[tuple[int | str, ...], Any, bool]]:
    """The keys to set so that the field at `path` exists: itself, or a model's required keys."""
    tp = _unwrap(tp)
    if not _is_model(tp):
        return [(path, tp, env)]
    leaves = []
    for name, field in tp.model_fields.items():
        if field.is_required():
            leaves += _required_leaves((*path, name), field.annotation, env)
    return leaves


def _toml_name(path: tuple[int | str, ...], tp: Any) -> str:
    *table, key = path
    origin = get_origin(tp)
    if origin is dict and _is_model(_unwrap(get_args(tp)[1])):
        return f"[{_dotted(tuple(path))}.NAME] tables"
    if not table:
        return f"the top-level key `{key}`"
    if any(isinstance(part, int) for part in table):
        return _dotted(tuple(path))  # in an array: pools[0].venue
    return f"[{_dotted(tuple(table))}] {key}"


def _env_var(path: tuple[int | str, ...], tp: Any) -> str:
    name = "REBALANCER_" + "__".join(str(part).upper() for part in path)
    scalar = get_origin(tp) is Literal or tp in (str, int, float, bool, Path)
    return name if scalar else f"{name} (as JSON)"
