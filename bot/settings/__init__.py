"""Settings: one TOML file plus REBALANCER_<SECTION>__<KEY> environment overrides.

Loaded and validated once, then frozen. Unknown keys are errors, addresses must be valid and are
checksummed, target weights must sum to 1, and every error names its field (a missing one: the
TOML key and the variable that set it) without quoting anything shaped like a private key. The
docstring under each field is its description in `rebalancer config schema`.
"""

from bot.settings.base import (
    WEIGHT_TOLERANCE,
    ChecksumAddress,
    EnvName,
    Fraction01,
    Section,
    redact,
)
from bot.settings.chain import (
    ChainSettings,
    PoolSettings,
    RetrySettings,
    TokenSettings,
    VenueSettings,
    WalletSettings,
)
from bot.settings.execution import ExecutionSettings, SignerSettings
from bot.settings.keeper import BacktestSettings, KeeperSettings, ValuationSettings
from bot.settings.load import Settings, describe, how_to_set, load_settings
from bot.settings.strategy import (
    Caps,
    CostGate,
    LpEntry,
    PortfolioSettings,
    StrategySettings,
    VolatilityBands,
)

__all__ = [
    "WEIGHT_TOLERANCE",
    "BacktestSettings",
    "Caps",
    "ChainSettings",
    "ChecksumAddress",
    "CostGate",
    "EnvName",
    "ExecutionSettings",
    "Fraction01",
    "KeeperSettings",
    "LpEntry",
    "PoolSettings",
    "PortfolioSettings",
    "RetrySettings",
    "Section",
    "Settings",
    "SignerSettings",
    "StrategySettings",
    "TokenSettings",
    "ValuationSettings",
    "VenueSettings",
    "VolatilityBands",
    "WalletSettings",
    "describe",
    "how_to_set",
    "load_settings",
    "redact",
]
