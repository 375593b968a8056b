"""A rebalance's status and checks, from its mined transactions alone."""

from __future__ import annotations

from bot.execution.settle import (
    TRANSFER_TOPIC,
    Step,
    executed_costs,
    executed_share,
    settle,
    shortfall_value,
    transfer_flows,
)
from bot.types import AddLiquidity, RemoveLiquidity, Swap

WALLET = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20
LINK, USDC = "0x" + "11" * 20, "0x" + "22" * 20
NAMES = {LINK: "LINK", USDC: "USDC"}


def swap(amount_in: int, expected_out: int, min_out: int, value: float = 100.0) -> Swap:
    return Swap(
        venue="uniswap",
        path=("USDC", "LINK"),
        pools=("uniswap:LINK/USDC",),
        amount_in=amount_in,
        expected_out=expected_out,
        min_out=min_out,
        fee_on_transfer=False,
        gas=120_000,
        value_in=value,
        fee_cost=0.3,
        impact_cost=0.2,
    )


def step(covers: tuple[int, ...], flows: dict[str, int], status: int = 1, tx: str = "0x1") -> Step:
    return Step(tx, covers, status, 100_000, 100_000 * 10**9, flows)


APPROVE = Step("0xa", (), 1, 46_000, 46_000 * 10**9, {})
PLAN = (swap(1_000, 50, 49), swap(2_000, 100, 98, value=200.0))


def test_every_action_at_or_above_its_minimum_is_executed() -> None:
    done = settle(
        PLAN,
        [
            APPROVE,
            step((0,), {"USDC": -1_000, "LINK": 50}),
            step((1,), {"USDC": -2_000, "LINK": 99}),
        ],
    )
    assert done.status == "executed"
    assert done.executed == (0, 1)
    assert all(c.ok for c in done.checks)
    assert done.gas_paid_wei == (46_000 + 200_000) * 10**9


def test_nothing_mined_is_not_sent() -> None:
    assert settle(PLAN, []).status == "not_sent"


def test_a_reverted_approval_is_failed_and_charges_no_shortfall() -> None:
    out_of_gas = Step("0xa", (), 0, 56_309, 56_309 * 10**9, {})
    done = settle(PLAN, [out_of_gas])
    assert done.status == "failed"
    assert done.checks == ()
    assert done.executed == ()
    assert done.gas_paid_wei == 56_309 * 10**9


def test_a_plan_cut_short_is_partial_and_counts_only_what_was_mined() -> None:
    done = settle(PLAN, [APPROVE, step((0,), {"USDC": -1_000, "LINK": 50})])
    assert done.status == "partial"
    assert done.executed == (0,)
    assert executed_costs(PLAN, done.executed) == 0.5
    assert executed_share(PLAN, done.executed) == 100.0 / 300.0
    # approvals alone are partial too: gas was paid for a plan that did not finish
    assert settle(PLAN, [APPROVE]).status == "partial"


def test_a_swap_with_no_effect_is_a_shortfall() -> None:
    # a router address with no code: the call "succeeds" and moves nothing
    done = settle(PLAN, [step((0,), {}), step((1,), {})])
    assert done.status == "shortfall"
    failed = {(c.token, c.realized) for c in done.failed_checks}
    assert failed == {("LINK", 0)}


def test_an_output_below_its_minimum_is_a_shortfall_and_valued() -> None:
    done = settle(
        PLAN, [step((0,), {"USDC": -1_000, "LINK": 48}), step((1,), {"USDC": -2_000, "LINK": 100})]
    )
    assert done.status == "shortfall"
    (bad,) = done.failed_checks
    assert (bad.token, bad.expected, bad.minimum, bad.realized) == ("LINK", 50, 49, 48)
    # 2 raw LINK short (decimals 0 here) at 7.5 each
    assert shortfall_value(done.checks, {"LINK": 7.5, "USDC": 1.0}, {"LINK": 0, "USDC": 0}) == 15.0


def test_an_input_taken_beyond_the_plan_is_a_shortfall() -> None:
    done = settle(PLAN[:1], [step((0,), {"USDC": -1_001, "LINK": 50})])
    assert done.status == "shortfall"


def test_one_atomic_transaction_is_checked_net_per_token() -> None:
    remove = RemoveLiquidity(
        "uniswap:LINK/USDC", "uniswap", "LINK", "USDC", 10, 40, 400, 39, 390, 1
    )
    add = AddLiquidity("uniswap:LINK/USDC", "uniswap", "LINK", "USDC", 5, 50, 5, 50, 4, 45, 3, 1)
    plan = (PLAN[0], remove, add)
    net = {"USDC": -1_000 + 400 - 50, "LINK": 50 + 40 - 5, "uniswap:LINK/USDC": -10 + 3}
    done = settle(plan, [step((0, 1, 2), net)])
    assert done.status == "executed"
    low = {**net, "USDC": net["USDC"] - 11}  # 11 below the least the three actions accept
    assert settle(plan, [step((0, 1, 2), low)]).status == "shortfall"


def test_transfer_logs_give_the_wallets_flows() -> None:
    def pad(address: str) -> str:
        return "0x" + address.removeprefix("0x").rjust(64, "0")

    def transfer(token: str, source: str, to: str, amount: int) -> dict[str, object]:
        return {
            "address": token,
            "topics": [TRANSFER_TOPIC, pad(source), pad(to)],
            "data": hex(amount),
        }

    logs: list[dict[str, object]] = [
        transfer(USDC, WALLET, OTHER, 1_000),
        transfer(LINK, OTHER, WALLET.upper().replace("0X", "0x"), 50),
        transfer(LINK, OTHER, OTHER, 7),  # not ours
        transfer("0x" + "99" * 20, OTHER, WALLET, 5),  # a token we do not track
        {"address": LINK, "topics": ["0x" + "00" * 32], "data": "0x"},  # another event
    ]
    assert transfer_flows(logs, WALLET, NAMES) == {"USDC": -1_000, "LINK": 50}
