"""The RPC clients, built from the settings in one place.

Every path that talks to the chain (the keeper, `status`, `plan`, `reconcile`, `deploy-executor`,
the demo) gets its clients from here, so none of them can forget the retry policy
(`chain.retry`), the lag limit or the private endpoint. The sender over them is built by
bot/execution/connect.py.
"""

from __future__ import annotations

from bot.chain.rpc import RetryPolicy, RpcClient
from bot.settings import Settings


def retry_policy(settings: Settings) -> RetryPolicy:
    """`chain.retry` as the RPC client takes it."""
    retry = settings.chain.retry
    return RetryPolicy(
        attempts=retry.attempts,
        backoff_seconds=retry.backoff_seconds,
        backoff_multiplier=retry.backoff_multiplier,
        timeout_seconds=retry.timeout_seconds,
    )


def rpc_client(settings: Settings) -> RpcClient:
    """The client for `chain.rpc_urls`, not yet opened (`async with` opens it)."""
    return RpcClient(
        settings.chain.rpc_urls,
        chain_id=settings.chain.chain_id,
        retry=retry_policy(settings),
        max_lag_blocks=settings.chain.max_lag_blocks,
    )


def private_client(settings: Settings) -> RpcClient | None:
    """The client for `execution.private_rpc_url`, not yet opened; None when none is set.

    The client is opened like any RpcClient (`async with`) and connects only on the first send:
    an endpoint that is down at startup stops nothing until a transaction has to go out, and
    then that transaction is not sent publicly (unless `execution.private_fallback_to_public`).
    """
    url = settings.execution.private_rpc_url
    if not url:
        return None
    return RpcClient([url], chain_id=settings.chain.chain_id, retry=retry_policy(settings))
