"""Where the project's files live, so code run from any directory finds them."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_ABI = ROOT / "contracts_abi"
NODE_MODULES = ROOT / "node_modules"
SCENARIOS = ROOT / "anvil_fixtures" / "scenarios"
FIXTURE_BUILD = ROOT / "anvil_fixtures" / "build"


def prices_csv() -> Path:
    """The price dataset: REBALANCER_PRICES_CSV, else the copy in the checkout's data/ folder."""
    override = os.environ.get("REBALANCER_PRICES_CSV")
    return Path(override) if override else ROOT / "data" / "prices_daily.csv"
