"""The chain, its endpoints, the wallet, and the tokens, venues and pools the keeper trades."""

from __future__ import annotations

from pydantic import Field

from bot.settings.base import ChecksumAddress, Section


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
