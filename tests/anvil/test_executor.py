"""RebalanceExecutor on the fixture chain: a plan lands whole at its quotes, or not at all."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from anvil_fixtures.artifacts import project_artifact
from bot.execution.calls import executor_call
from bot.paths import ROOT
from bot.planner import plan
from bot.settings import Settings, load_settings
from bot.status import read_and_value
from bot.types import AddLiquidity, Plan
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.helpers import contract, send
from tests.keeper_helpers import LOCAL_CONFIG, run_cli

LP_TARGETS = {"uniswap:USDC/WETH": 0.02, "sushiswap:WBTC/WETH": 0.20}


def deploy_executor(chain: Chain) -> str:
    w3 = chain.w3
    artifact = project_artifact("RebalanceExecutor")
    factories = [v["factory"] for v in chain.manifest["venues"].values()]
    receipt = send(
        w3,
        w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"]).constructor(factories),
        chain.manifest["keeper"]["address"],
    )
    return str(receipt["contractAddress"])


def settings_for(chain: Chain, wallet: str) -> Settings:
    base = load_settings(ROOT / "config" / "local.toml", rpc_url=chain.url)
    return base.model_copy(
        update={
            "wallet": base.wallet.model_copy(update={"address": Web3.to_checksum_address(wallet)}),
            "portfolio": base.portfolio.model_copy(update={"lp_targets": LP_TARGETS}),
        }
    )


def move_everything(chain: Chain, to: str) -> None:
    """Vault mode's deposit: the keeper transfers its tokens and LP tokens to the executor."""
    w3 = chain.w3
    keeper = chain.manifest["keeper"]["address"]
    for address in [
        *(t["address"] for t in chain.manifest["tokens"].values()),
        *(p["address"] for p in chain.manifest["pools"]),
    ]:
        token = contract(w3, address, "IERC20")
        held = token.functions.balanceOf(keeper).call()
        if held:
            send(w3, token.functions.transfer(to, held), keeper)


async def four_kinds_plan(settings: Settings) -> tuple[Plan, Any]:
    snapshot, view = await read_and_value(settings)
    proposed = plan(
        snapshot, view, settings, {"LINK": 40_000.0, "usd": -40_000.0}, int(time.time())
    )
    kinds = [a.kind for a in proposed.actions]
    assert kinds[0] == "remove_liquidity"
    assert kinds[-1] == "add_liquidity"
    assert {a.venue for a in proposed.swaps} == {"uniswap", "sushiswap"}
    return proposed, snapshot


def pair_addresses(chain: Chain) -> dict[str, str]:
    return {p["key"]: p["address"] for p in chain.manifest["pools"]}


def holdings(chain: Chain, owner: str) -> dict[str, int]:
    w3 = chain.w3
    out = {}
    for address in [
        *(t["address"] for t in chain.manifest["tokens"].values()),
        *(p["address"] for p in chain.manifest["pools"]),
    ]:
        out[address] = contract(w3, address, "IERC20").functions.balanceOf(owner).call()
    return out


async def test_vault_mode_runs_the_whole_plan_in_one_transaction(chain: Chain) -> None:
    executor = deploy_executor(chain)
    move_everything(chain, executor)
    settings = settings_for(chain, executor)
    proposed, _ = await four_kinds_plan(settings)
    assert len(proposed.actions) >= 4
    data, pulls = executor_call(proposed, settings, pair_addresses(chain), "vault")
    assert pulls == []
    w3 = chain.w3
    keeper = chain.manifest["keeper"]["address"]
    tx = w3.eth.send_transaction({"from": keeper, "to": executor, "data": data})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1
    # The executor holds exactly what the plan said: weights equal the planned ones.
    _, after = await read_and_value(settings)
    for unit in after.units:
        assert after.unit(unit.unit).weight == pytest.approx(
            proposed.post_weights[unit.unit], abs=1e-12
        )
    # the add step minted the LP it quoted
    add = proposed.actions[-1]
    assert isinstance(add, AddLiquidity)
    sushi_pair = contract(w3, chain.pool(add.pool)["address"], "UniswapV2Pair")
    assert (
        sushi_pair.functions.balanceOf(executor).call()
        == int(chain.pool(add.pool)["wallet_lp"]) + add.expected_liquidity
    )


@adversarial
async def test_a_failing_last_step_reverts_every_step(chain: Chain, faults: Faults) -> None:
    executor = deploy_executor(chain)
    move_everything(chain, executor)
    watch = faults.watch(chain, holder=executor)  # vault mode: the executor holds the funds
    settings = settings_for(chain, executor)
    proposed, _ = await four_kinds_plan(settings)
    last = proposed.actions[-1]
    assert isinstance(last, AddLiquidity)
    broken = replace(
        proposed,
        actions=(
            *proposed.actions[:-1],
            replace(last, expected_liquidity=last.expected_liquidity * 2),
        ),
    )
    watch.allow_actions(broken.actions, settings.execution.slippage_bps)
    with faults.escaped():
        data, _ = executor_call(broken, settings, pair_addresses(chain), "vault")
    w3 = chain.w3
    keeper = chain.manifest["keeper"]["address"]
    before = holdings(chain, executor)
    tx = w3.eth.send_transaction({"from": keeper, "to": executor, "data": data, "gas": 3_000_000})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 0
    assert holdings(chain, executor) == before
    watch.finish(executions=1)  # at most once; it reverted whole


async def test_wallet_mode_pulls_exact_amounts_and_returns_everything(chain: Chain) -> None:
    executor = deploy_executor(chain)
    keeper = chain.manifest["keeper"]["address"]
    settings = settings_for(chain, keeper)
    proposed, _ = await four_kinds_plan(settings)
    data, pulls = executor_call(proposed, settings, pair_addresses(chain), "wallet")
    w3 = chain.w3
    for token, amount in pulls:
        send(w3, contract(w3, token, "IERC20").functions.approve(executor, amount), keeper)
    tx = w3.eth.send_transaction({"from": keeper, "to": executor, "data": data})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    assert set(holdings(chain, executor).values()) == {0}  # nothing stays behind
    for token, _ in pulls:
        assert (
            contract(w3, token, "IERC20").functions.allowance(keeper, executor).call() == 0
        )  # exact allowances used up
    _, after = await read_and_value(settings)
    for unit in after.units:
        # the keeper paid gas in ETH; everything else is where the plan put it
        assert unit.weight == pytest.approx(proposed.post_weights[unit.unit], abs=1e-6)


@adversarial
def test_only_the_owner_and_only_known_pairs(chain: Chain, faults: Faults) -> None:
    executor = deploy_executor(chain)
    watch = faults.watch(chain, holder=executor)
    w3 = chain.w3
    artifact = project_artifact("RebalanceExecutor")
    ex = w3.eth.contract(address=Web3.to_checksum_address(executor), abi=artifact["abi"])
    stranger = chain.manifest["deployer"]
    # the contract's refusals are the expected answers: anything else from web3 is counted
    with faults.escaped(), pytest.raises(Exception, match=r"NotOwner|0x30cd7471"):
        ex.functions.execute([], [], [], [], 2**63).call({"from": stranger})
    with faults.escaped(), pytest.raises(Exception, match=r"NotOwner|0x30cd7471"):
        ex.functions.withdraw(chain.token("USDC"), 1, stranger).call({"from": stranger})
    # a pair-shaped contract outside the allowed factories is refused
    fake_pair = chain.token("USDC")
    step = (0, fake_pair, chain.token("USDC"), 1, 0, 0, 0)
    with faults.escaped(), pytest.raises(Exception, match="execution reverted"):
        ex.functions.execute([step], [], [], [], 2**63).call(
            {"from": chain.manifest["keeper"]["address"]}
        )
    with faults.escaped(), pytest.raises(Exception, match=r"Expired|0x203d82d8"):
        ex.functions.execute([], [], [], [], 1).call({"from": chain.manifest["keeper"]["address"]})
    watch.finish(executions=0)  # calls only: nothing is sent


def test_deploy_executor_command_and_vault_valuation(chain: Chain, tmp_path: Path) -> None:
    import json

    config = str(LOCAL_CONFIG)
    deployed = run_cli(
        "deploy-executor",
        "--config",
        config,
        "--rpc-url",
        chain.url,
        "--journal",
        str(tmp_path / "j.sqlite"),
        key=chain.manifest["keeper"]["private_key"],
    )
    assert deployed.returncode == 0, deployed.stderr
    executor = deployed.stdout.split(" deployed at ")[1].split(",")[0]
    w3 = chain.w3
    ex = w3.eth.contract(
        address=Web3.to_checksum_address(executor), abi=project_artifact("RebalanceExecutor")["abi"]
    )
    assert ex.functions.owner().call() == chain.manifest["keeper"]["address"]
    for venue in chain.manifest["venues"].values():
        assert ex.functions.factories(venue["factory"]).call()
    assert chain.manifest["keeper"]["private_key"][2:] not in deployed.stdout + deployed.stderr

    def status(settings: dict[str, str]) -> dict[str, Any]:
        result = run_cli(
            "status", "--config", config, "--rpc-url", chain.url, "--json", settings=settings
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    before = status({})
    move_everything(chain, executor)
    vault = {"EXECUTION__EXECUTOR": executor, "EXECUTION__EXECUTOR_MODE": "vault"}
    after = status(vault)
    # the same portfolio, now held by the executor (less the gas the deposits cost)
    assert after["total_value"] == pytest.approx(before["total_value"], rel=1e-4)
    assert after["wallet"] == Web3.to_checksum_address(executor)
    assert {p["pool"] for p in after["lp_positions"]} == {p["pool"] for p in before["lp_positions"]}
    without_vault = status({})
    assert (
        without_vault["total_value"] < before["total_value"] * 0.01
    )  # the wallet alone is nearly empty
