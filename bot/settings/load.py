"""The Settings root, load_settings, and errors that name each field and how to set it."""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.errors import ConfigError
from bot.settings.base import WEIGHT_TOLERANCE, _one_line_descriptions, redact
from bot.settings.chain import (
    ChainSettings,
    PoolSettings,
    TokenSettings,
    VenueSettings,
    WalletSettings,
)
from bot.settings.execution import ExecutionSettings, SignerSettings
from bot.settings.keeper import BacktestSettings, KeeperSettings, ValuationSettings
from bot.settings.strategy import PortfolioSettings, StrategySettings
from bot.types import NATIVE


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


def unwrap_annotation(tp: Any) -> Any:
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


def is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _type_at(loc: tuple[int | str, ...]) -> tuple[Any, bool] | None:
    """The type at `loc` in Settings, and whether only model fields lead there (env-settable)."""
    tp: Any = Settings
    env = True
    for part in loc:
        tp = unwrap_annotation(tp)
        origin = get_origin(tp)
        if is_model(tp) and isinstance(part, str) and part in tp.model_fields:
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
    tp = unwrap_annotation(tp)
    if not is_model(tp):
        return [(path, tp, env)]
    leaves = []
    for name, field in tp.model_fields.items():
        if field.is_required():
            leaves += _required_leaves((*path, name), field.annotation, env)
    return leaves


def _toml_name(path: tuple[int | str, ...], tp: Any) -> str:
    *table, key = path
    origin = get_origin(tp)
    if origin is dict and is_model(unwrap_annotation(get_args(tp)[1])):
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
