"""Calldata for a Plan: one RebalanceExecutor call (atomic route) or Router02 calls (sequential).

Pure: plan and settings in, calls out. Tokens are symbols in the plan and addresses here; LP
tokens are named by their pool key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector

from bot.errors import ConfigError
from bot.settings import Settings
from bot.types import AddLiquidity, Plan, RemoveLiquidity, Swap, slippage_floor

SWAP, REMOVE_LIQUIDITY, ADD_LIQUIDITY = 0, 1, 2
ZERO = "0x" + "0" * 40
STEP = "(uint8,address,address,uint256,uint256,uint256,uint256)"
EXECUTE = function_signature_to_4byte_selector(
    f"execute({STEP}[],(address,uint256)[],(address,uint256)[],address[],uint256)"
)
APPROVE = function_signature_to_4byte_selector("approve(address,uint256)")
SWAP_EXACT = function_signature_to_4byte_selector(
    "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"
)
SWAP_EXACT_FOT = function_signature_to_4byte_selector(
    "swapExactTokensForTokensSupportingFeeOnTransferTokens(uint256,uint256,address[],address,uint256)"
)
REMOVE = function_signature_to_4byte_selector(
    "removeLiquidity(address,address,uint256,uint256,uint256,address,uint256)"
)
ADD = function_signature_to_4byte_selector(
    "addLiquidity(address,address,uint256,uint256,uint256,uint256,address,uint256)"
)


@dataclass(frozen=True, slots=True)
class Call:
    to: str
    data: bytes
    what: str  # for logs and errors: "swap USDC>WETH on uniswap"
    kind: Literal["approve", "action", "execute"] = "action"
    covers: tuple[int, ...] = ()  # the plan's action indexes this call carries out


@dataclass(frozen=True, slots=True)
class Spend:
    """A token (or LP token) a call takes from the wallet, and who takes it."""

    token: str  # address
    spender: str
    amount: int
    symbol: str


def min_liquidity(action: AddLiquidity, settings: Settings) -> int:
    return slippage_floor(action.expected_liquidity, settings.execution.slippage_bps)


def spends(plan: Plan, settings: Settings, pairs: Mapping[str, str]) -> list[tuple[str, int]]:
    """What the wallet itself must provide, by token address: each spend less what earlier actions
    of the plan delivered (a swap's output, the tokens an LP removal pays)."""
    produced: dict[str, int] = {}
    needed: dict[str, int] = {}

    def address(name: str) -> str:
        return pairs[name] if name in pairs else settings.tokens[name].address

    def spend(name: str, amount: int) -> None:
        token = address(name)
        covered = min(produced.get(token, 0), amount)
        produced[token] = produced.get(token, 0) - covered
        if amount > covered:
            needed[token] = needed.get(token, 0) + amount - covered

    def produce(name: str, amount: int) -> None:
        token = address(name)
        produced[token] = produced.get(token, 0) + amount

    for action in plan.actions:
        for name, amount in action.changes:  # what leaves the wallet first
            if amount < 0:
                spend(name, -amount)
            else:
                produce(name, amount)
    return sorted(needed.items())


def executor_call(
    plan: Plan, settings: Settings, pairs: Mapping[str, str], mode: Literal["vault", "wallet"]
) -> tuple[bytes, list[tuple[str, int]]]:
    """Calldata of RebalanceExecutor.execute for the whole plan, and (in wallet mode) the exact
    amounts it pulls from the wallet, which the wallet must approve first."""
    tokens = settings.tokens
    steps = []
    touched: set[str] = set()
    for action in plan.actions:
        if isinstance(action, Swap):
            if settings.venues[action.venue].fee_bps != 30:
                raise ConfigError(
                    f"venues.{action.venue}.fee_bps: the executor computes Uniswap V2's 0.3% fee; "
                    'use execution.route = "sequential" for other fees'
                )
            last = len(action.path) - 2
            for hop, (a, b) in enumerate(zip(action.path, action.path[1:], strict=False)):
                amount = action.amount_in if hop == 0 else 0  # 0: what the previous hop delivered
                minimum = action.min_out if hop == last else 0
                steps.append(
                    (SWAP, pairs[action.pools[hop]], tokens[a].address, amount, 0, minimum, 0)
                )
                touched.update((tokens[a].address, tokens[b].address))
        elif isinstance(action, RemoveLiquidity):
            steps.append(
                (
                    REMOVE_LIQUIDITY,
                    pairs[action.pool],
                    ZERO,
                    action.liquidity,
                    0,
                    action.min0,
                    action.min1,
                )
            )
            touched.update(
                (pairs[action.pool], tokens[action.token0].address, tokens[action.token1].address)
            )
        else:
            assert isinstance(action, AddLiquidity)
            minimum = min_liquidity(action, settings)
            steps.append(
                (
                    ADD_LIQUIDITY,
                    pairs[action.pool],
                    ZERO,
                    action.amount0,
                    action.amount1,
                    minimum,
                    0,
                )
            )
            touched.update(
                (pairs[action.pool], tokens[action.token0].address, tokens[action.token1].address)
            )
    pulls = spends(plan, settings, pairs) if mode == "wallet" else []
    returns = sorted(touched) if mode == "wallet" else []
    data = EXECUTE + encode(
        [f"{STEP}[]", "(address,uint256)[]", "(address,uint256)[]", "address[]", "uint256"],
        [steps, pulls, [], returns, plan.deadline],
    )
    return data, pulls


def router_calls(
    plan: Plan, settings: Settings, pairs: Mapping[str, str], wallet: str
) -> list[Call]:
    """One Router02 call per action, in plan order (approvals are added by the sender)."""
    calls = []
    tokens = settings.tokens
    for index, action in enumerate(plan.actions):
        router = settings.venues[action.venue].router
        covers = (index,)
        if isinstance(action, Swap):
            path = [tokens[s].address for s in action.path]
            selector = SWAP_EXACT_FOT if action.fee_on_transfer else SWAP_EXACT
            data = selector + encode(
                ["uint256", "uint256", "address[]", "address", "uint256"],
                [action.amount_in, action.min_out, path, wallet, plan.deadline],
            )
            what = f"swap {'>'.join(action.path)} on {action.venue}"
            calls.append(Call(router, data, what, covers=covers))
        elif isinstance(action, RemoveLiquidity):
            data = REMOVE + encode(
                ["address", "address", "uint256", "uint256", "uint256", "address", "uint256"],
                [
                    tokens[action.token0].address,
                    tokens[action.token1].address,
                    action.liquidity,
                    action.min0,
                    action.min1,
                    wallet,
                    plan.deadline,
                ],
            )
            calls.append(Call(router, data, f"remove liquidity {action.pool}", covers=covers))
        else:
            data = ADD + encode(
                [
                    "address",
                    "address",
                    "uint256",
                    "uint256",
                    "uint256",
                    "uint256",
                    "address",
                    "uint256",
                ],
                [
                    tokens[action.token0].address,
                    tokens[action.token1].address,
                    action.amount0_desired,
                    action.amount1_desired,
                    action.min0,
                    action.min1,
                    wallet,
                    plan.deadline,
                ],
            )
            calls.append(Call(router, data, f"add liquidity {action.pool}", covers=covers))
    return calls


def router_spends(plan: Plan, settings: Settings, pairs: Mapping[str, str]) -> list[Spend]:
    """Each router call's pull from the wallet: what the approvals must cover, per router."""
    out = []
    tokens = settings.tokens
    for action in plan.actions:
        router = settings.venues[action.venue].router
        if isinstance(action, Swap):
            out.append(
                Spend(tokens[action.path[0]].address, router, action.amount_in, action.path[0])
            )
        elif isinstance(action, RemoveLiquidity):
            out.append(Spend(pairs[action.pool], router, action.liquidity, action.pool))
        else:
            out.append(
                Spend(tokens[action.token0].address, router, action.amount0_desired, action.token0)
            )
            out.append(
                Spend(tokens[action.token1].address, router, action.amount1_desired, action.token1)
            )
    return out


def approve_data(spender: str, amount: int) -> bytes:
    return APPROVE + encode(["address", "uint256"], [spender, amount])
