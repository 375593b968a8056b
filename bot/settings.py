"""Settings: one TOML file plus REBALANCER_<SECTION>__<KEY> environment overrides.

Loaded and validated once, then frozen. Unknown keys are errors, addresses must be valid and are
checksummed, target weights must sum to 1, and every error names its field.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

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


def _checksummed(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"{value!r} is not an Ethereum address")
    return str(to_checksum_address(value))


ChecksumAddress = Annotated[str, AfterValidator(_checksummed)]
Fraction01 = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(Section):
    attempts: int = Field(default=3, ge=1, le=10)
    backoff_seconds: float = Field(default=0.2, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    timeout_seconds: float = Field(default=10.0, gt=0)


class ChainSettings(Section):
    rpc_urls: list[str] = Field(min_length=1)
    chain_id: int = Field(gt=0)
    max_lag_blocks: int = Field(default=5, ge=0)
    block_time_seconds: float = Field(default=12.0, gt=0)
    retry: RetrySettings = RetrySettings()


class WalletSettings(Section):
    address: ChecksumAddress


class TokenSettings(Section):
    address: ChecksumAddress
    decimals: int = Field(ge=0, le=36)
    notional: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    weth: bool = False
    transfer_fee_bps: int = Field(default=0, ge=0, lt=10_000)  # taken by the token on transfer
    approve_through_zero: bool = False  # USDT: a non-zero allowance must be set to 0 first


class VenueSettings(Section):
    factory: ChecksumAddress
    router: ChecksumAddress
    fee_bps: int = Field(default=30, ge=0, lt=10_000)


class PoolSettings(Section):
    venue: str
    tokens: tuple[str, str]
    address: ChecksumAddress | None = None  # resolved with factory.getPair when absent

    @property
    def key(self) -> str:
        return f"{self.venue}:{self.tokens[0]}/{self.tokens[1]}"


class LpEntry(Section):
    """What an LP position was opened with, for its impermanent loss against holding."""

    pool: str  # "venue:A/B"
    amount0: int = Field(gt=0)  # raw, in the pair's token0
    amount1: int = Field(gt=0)


class ValuationSettings(Section):
    numeraire: Literal["USD", "ETH"] = "USD"
    stablecoin: str | None = "USDC"  # the token worth 1 USD when the numeraire is USD
    twap_window_seconds: int = Field(default=1800, gt=0)
    max_twap_deviation: float = Field(default=0.05, gt=0)  # |spot/TWAP - 1| above this: flagged
    # With no TWAP for a pool (a node without the window's old state): "refuse" trades through
    # it, or "allow" them on the spot price alone.
    missing_twap: Literal["allow", "refuse"] = "allow"
    # A pool with no trade for this long: its TWAP only repeats its last price, so the guard is
    # blind there. "refuse" trades through it; "allow" them. (The accumulators are extended to
    # the current time, so any window length is well defined: no widening is needed.)
    stale_pool_seconds: int | None = Field(default=None, gt=0)
    stale_pool: Literal["allow", "refuse"] = "allow"


class PortfolioSettings(Section):
    """Targets by allocation unit: a bucket name, or an asset symbol that is in no bucket."""

    targets: dict[str, Fraction01]
    buckets: dict[str, list[str]] = Field(default_factory=dict)
    lp_entries: list[LpEntry] = Field(default_factory=list)
    # Share of portfolio value to keep in an LP position ("venue:A/B"); its underlying still
    # counts toward the asset targets. Positions not listed are left alone.
    lp_targets: dict[str, Fraction01] = Field(default_factory=dict)
    lp_band: float = Field(default=0.02, gt=0, le=1)  # act on an LP position beyond this drift


class VolatilityBands(Section):
    """Scale band widths by realized volatility of the smoothed price (crypto needs wider bands)."""

    enabled: bool = False
    reference_volatility: float = Field(default=0.6, gt=0)  # annualised vol at which width is 1x
    floor: float = Field(default=0.5, gt=0)  # multiplier bounds
    cap: float = Field(default=3.0, gt=0)
    smoothing: float = Field(default=0.3, gt=0, le=1)  # EMA weight of the newest price
    min_observations: int = Field(default=10, ge=3)


class CostGate(Section):
    """Trade only when the estimated benefit beats the plan's cost (strategies/cost_gate.py)."""

    enabled: bool = True
    benefit_model: Literal["tracking_var", "linear"] = "tracking_var"
    # tracking_var: value at risk of the drift portfolio over the horizon, before minus after
    horizon_days: float = Field(default=30, gt=0)
    z_score: float = Field(default=1.65, gt=0)  # one-sided 95%
    default_volatility: float = Field(default=0.8, ge=0)  # annualised, for units not listed
    volatility: dict[str, float] = Field(default_factory=dict)  # per unit
    # linear: a configured value per unit of drift removed (0.01 = 1% of the value moved)
    value_per_drift: float = Field(default=0.01, ge=0)
    min_benefit_ratio: float = Field(default=1.0, gt=0)  # benefit must be at least this x cost


class Caps(Section):
    max_turnover_fraction: float = Field(default=0.5, gt=0, le=2)  # per rebalance, of value
    max_daily_turnover_fraction: float = Field(default=1.0, gt=0)
    max_price_impact_bps: float = Field(default=100, gt=0)  # per trade


class StrategySettings(Section):
    trigger: Literal["threshold", "calendar", "hybrid"] = "hybrid"
    interval_seconds: int | None = Field(default=86_400, gt=0)
    cron: str | None = None  # UTC; replaces interval_seconds when set
    band: Literal["absolute", "relative"] = "absolute"
    band_width: float = Field(default=0.05, gt=0)
    band_overrides: dict[str, float] = Field(default_factory=dict)  # per unit
    deadband: float = Field(default=0.005, ge=0, lt=1)  # of portfolio value, per unit
    min_trade_value: float = Field(default=0.0, ge=0)  # in the numeraire
    min_trade_fraction: float = Field(default=0.001, ge=0, lt=1)  # of portfolio value
    cooldown_seconds: int = Field(default=3_600, ge=0)
    rebalance_to: Literal["target", "band_edge", "partial"] = "target"
    partial_fraction: float = Field(default=0.5, gt=0, le=1)
    volatility_bands: VolatilityBands = VolatilityBands()
    cost_gate: CostGate = CostGate()
    caps: Caps = Caps()

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
    slippage_bps: float = Field(default=50, ge=0, lt=10_000)  # minOut = quote x (1 - this)
    deadline_seconds: int = Field(default=300, gt=0)
    hubs: list[str] = Field(default_factory=lambda: ["WETH", "USDC"])
    max_hops: int = Field(default=3, ge=1, le=4)
    priority_fee_gwei: float = Field(default=1.0, ge=0)
    split_venues: bool = True
    # how a plan goes on chain
    route: Literal["atomic", "sequential"] = "sequential"
    executor: ChecksumAddress | None = None  # RebalanceExecutor (`rebalancer deploy-executor`)
    executor_mode: Literal["vault", "wallet"] = "wallet"
    approval: Literal["exact", "capped"] = "exact"
    approval_cap: float = Field(default=2.0, ge=1)  # "capped": approve up to this x the need
    # fees (EIP-1559, from eth_feeHistory) and their caps
    fee_percentile: float = Field(default=20, ge=0, le=100)
    fee_history_blocks: int = Field(default=10, ge=1, le=1024)
    max_fee_gwei: float = Field(default=300, gt=0)  # above this the rebalance waits
    max_gas_cost: float = Field(default=500, gt=0)  # per rebalance, in the numeraire
    gas_limit_margin: float = Field(default=1.25, ge=1)
    # after sending
    confirmations: int = Field(default=2, ge=1)
    stuck_blocks: int = Field(default=3, ge=1)  # replace a transaction pending this long
    replacement_bump: float = Field(default=0.125, ge=0.1)  # both fee fields, at least
    poll_seconds: float = Field(default=1.0, gt=0)
    receipt_timeout_seconds: float = Field(default=600, gt=0)
    # private submission: never falls back to the public endpoint unless allowed
    private_rpc_url: str | None = None
    private_fallback_to_public: bool = False
    relay_url: str | None = None  # eth_sendBundle / eth_callBundle endpoint

    @model_validator(mode="after")
    def _atomic_needs_executor(self) -> ExecutionSettings:
        if self.route == "atomic" and self.executor is None:
            raise ValueError(
                "executor: the atomic route needs an executor address (deploy one with "
                "`rebalancer deploy-executor`)"
            )
        return self


class KeeperSettings(Section):
    # None: live when a key is configured, else dry-run
    mode: Literal["live", "dry-run", "paper"] | None = None
    trigger_on: Literal["block", "interval"] = "block"
    interval_seconds: float = Field(default=12.0, gt=0)  # "interval", and the floor between cycles
    poll_seconds: float = Field(default=1.0, gt=0)
    cycle_deadline_seconds: float = Field(default=300.0, gt=0)
    max_consecutive_failures: int = Field(default=5, ge=1)  # then the circuit breaker halts
    daily_loss_cap: float = Field(default=5_000.0, gt=0)  # numeraire: costs and shortfalls a day
    journal: Path = Path("rebalancer-journal.sqlite")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)  # 0: any free port
    healthz_max_age_seconds: float = Field(default=900.0, gt=0)
    shutdown_timeout_seconds: float = Field(default=60.0, gt=0)
    lot_method: Literal["FIFO", "HIFO"] = "FIFO"


class BacktestSettings(Section):
    """How `rebalancer backtest` simulates the market from a daily price file."""

    price_columns: dict[str, str] = Field(
        default_factory=dict
    )  # token -> CSV column (default: its symbol)
    initial_value: float = Field(default=1_000_000.0, gt=0)
    pool_depth_usd: float = Field(default=10_000_000.0, gt=0)  # each side, every pool
    pool_depth_overrides: dict[str, float] = Field(default_factory=dict)  # "venue:A/B" -> USD
    gas_gwei: float = Field(default=30.0, ge=0)
    stress_gas_gwei: float = Field(default=300.0, ge=0)  # in the stress windows
    gas_per_rebalance: float = Field(default=600_000, ge=0)  # the sweep engine's fixed gas
    calendar_days: int = Field(default=30, gt=0)  # the calendar strategy shown alongside


class SignerSettings(Section):
    """Where the key comes from. The key and the password themselves never go in this file."""

    keystore: Path | None = None  # an eth-account v3 JSON keystore (geth, Foundry)
    password_file: Path | None = None
    password_env: str = "REBALANCER_KEYSTORE_PASSWORD"  # noqa: S105 (a variable's name)
    key_env: str = "REBALANCER_PRIVATE_KEY"  # a raw key, for development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix="REBALANCER_",
        env_nested_delimiter="__",
        nested_model_default_partial_update=True,
    )
    _toml_path: ClassVar[Path | None] = None

    chain: ChainSettings
    wallet: WalletSettings
    tokens: dict[str, TokenSettings]
    venues: dict[str, VenueSettings]
    pools: list[PoolSettings] = Field(min_length=1)
    valuation: ValuationSettings = ValuationSettings()
    portfolio: PortfolioSettings
    strategy: StrategySettings = StrategySettings()
    execution: ExecutionSettings = ExecutionSettings()
    signer: SignerSettings = SignerSettings()
    keeper: KeeperSettings = KeeperSettings()
    backtest: BacktestSettings = BacktestSettings()

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
    """Settings from a TOML file and the environment; `rpc_url` (or REBALANCER_RPC_URL) wins."""
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
    except ValidationError as err:
        raise ConfigError(f"{file}: {describe(err)}") from None
    except ValueError as err:  # a TOML syntax error
        raise ConfigError(f"{file}: {err}") from None
    finally:
        Settings._toml_path = None
    return settings


def describe(err: ValidationError) -> str:
    problems = []
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)
