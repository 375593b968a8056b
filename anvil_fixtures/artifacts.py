"""Contract artifacts: Uniswap V2 from the npm packages, the project's own from contracts_abi/."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from bot.errors import SetupError
from bot.paths import CONTRACTS_ABI, NODE_MODULES

_NPM = {
    "WETH9": "@uniswap/v2-periphery/build/WETH9.json",
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
}


@cache
def npm_artifact(name: str) -> dict[str, Any]:
    """ABI and creation bytecode of a Uniswap contract, read from node_modules (never copied)."""
    path = NODE_MODULES / _NPM[name]
    if not path.is_file():
        raise SetupError(
            f"{path} is missing: run `make setup` (npm ci installs the Uniswap packages)"
        )
    data = json.loads(path.read_text())
    bytecode = data.get("bytecode") or data["evm"]["bytecode"]["object"]
    return {
        "abi": data["abi"],
        "bytecode": bytecode if bytecode.startswith("0x") else "0x" + bytecode,
    }


@cache
def project_artifact(name: str) -> dict[str, Any]:
    """ABI (and bytecode, for the project's own contracts) from contracts_abi/."""
    path = CONTRACTS_ABI / f"{name}.json"
    if not path.is_file():
        raise SetupError(f"{path} is missing: run `make contracts`")
    data: dict[str, Any] = json.loads(path.read_text())
    return data
