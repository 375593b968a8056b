"""How a plan is routed, priced, sent and seen through, and where the signing key comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from bot.settings.base import ChecksumAddress, EnvName, Section


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
