"""The RPC clients and the sender, built from the settings in one place.

Every path that talks to the chain (the keeper, `status`, `plan`, `reconcile`, `deploy-executor`,
the demo) gets its clients from here, so none of them can forget the retry policy
(`chain.retry`), the lag limit or the private endpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.chain.rpc import RetryPolicy, RpcClient
from bot.execution.sender import Sender
from bot.execution.signer import Signer
from bot.journal import Journal
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


@dataclass(frozen=True, slots=True)
class Connection:
    """What `connected` opened."""

    rpc: RpcClient
    private_rpc: RpcClient | None = None  # execution.private_rpc_url, when there is a sender
    sender: Sender | None = None  # only with a signer


@contextlib.asynccontextmanager
async def connected(
    settings: Settings, signer: Signer | None, journal: Journal
) -> AsyncIterator[Connection]:
    """The open clients, and with a signer the sender over them; all closed on the way out.

    The sender sends through `execution.private_rpc_url` when one is set, like every sender:
    the keeper's trades and `deploy-executor`'s deployment alike. Without a signer (dry-run,
    paper) nothing is sent, so no private client is opened.
    """
    async with contextlib.AsyncExitStack() as stack:
        rpc = await stack.enter_async_context(rpc_client(settings))
        if signer is None:
            yield Connection(rpc)
            return
        private = private_client(settings)
        private_rpc = None if private is None else await stack.enter_async_context(private)
        sender = Sender(
            rpc,
            signer,
            journal,
            settings.execution,
            settings.chain.chain_id,
            private_rpc=private_rpc,
        )
        yield Connection(rpc, private_rpc, sender)
