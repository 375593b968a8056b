"""The open RPC clients and, with a signer, the sender over them (`connected`).

The clients come from bot/chain/connect.py, so every sender gets the retry policy, the lag limit
and the private endpoint the settings give.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.chain.connect import private_client, rpc_client
from bot.chain.rpc import RpcClient
from bot.execution.sender import Sender
from bot.execution.signer import Signer
from bot.journal import Journal
from bot.settings import Settings


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
