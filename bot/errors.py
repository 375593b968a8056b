"""Errors, grouped by what the caller does next.

RebalancerError
├── ConfigError            bad input from the user: fix the file or flag named in the message
├── SetupError             a missing tool or a busy resource: the message says how to fix it
├── TemporaryError         the network or a node hiccupped: retry (the RPC layer does, by
│   │                      policy); a send that ends in one may have gone out
│   ├── NotDelivered       the request was not taken up (refused connection, HTTP 429/5xx):
│   │                      nothing happened, a transaction did not go out
│   ├── LocalResourceError this host is out of file descriptors: no endpoint is to blame
│   └── NotSent            no endpoint took a transaction: it never left, its nonce is free
├── RpcError               a node answered with a JSON-RPC error: it refused, another node would
│                          too, so never retried nor failed over; the caller decides
├── SkipCycle              this cycle's data cannot be trusted: record it, try again next cycle
│   ├── DataError          a read returned something impossible (names the pool or token)
│   ├── FeeTooHigh         gas is above a configured cap: the rebalance waits
│   ├── SimulationReverted the transaction would revert now: nothing was signed
│   ├── SendRejected       the node refused the signed transaction: its nonce is free again
│   ├── PrivateNotResent   a private transaction would have to go out publicly: it does not
│   └── BundleReverted     the relay's simulation says the bundle reverts: nothing was sent
└── Halt                   stop trading until a person looks (circuit breaker)
    └── NonceTaken         another transaction used our nonce: a person should look at the wallet

Whether to retry is the class's to say, never the call site's: `retryable` (send the same
request again, after a backoff) and `endpoint_fault` (another endpoint may do better: the RPC
client fails over to the next one and counts a failure against this one).
"""

from __future__ import annotations

from typing import Any, ClassVar


class RebalancerError(Exception):
    """Root of every error the bot raises on purpose."""

    retryable: ClassVar[bool] = False
    """The same request, sent again after a backoff, may succeed: the RPC client does so."""
    endpoint_fault: ClassVar[bool] = False
    """The endpoint that answered is to blame: another one may do better (the RPC client fails
    over to the next endpoint and counts a failure against this one)."""


class ConfigError(RebalancerError):
    """Invalid configuration or scenario; the message names the field."""


class SetupError(RebalancerError):
    """The environment lacks something (a binary, a free port); the message says what to do."""


# --- retry ----------------------------------------------------------------------------------
class TemporaryError(RebalancerError):
    """A transient failure at the RPC boundary; safe to retry.

    Nothing says the request was not acted on: a transaction sent without an answer may have
    gone out (the sender looks it up by hash and re-sends the same bytes, never new ones).
    """

    retryable = True
    endpoint_fault = True


class NotDelivered(TemporaryError):
    """No attempt was taken up: the connection was refused, or the endpoint answered an HTTP
    error status (busy, rate-limited, its upstream down) instead of a JSON-RPC answer. Whatever
    was asked did not happen; a transaction that was not delivered did not go out."""


class LocalResourceError(TemporaryError):
    """This host ran out of file descriptors: no endpoint is at fault, so none is marked failed.

    Retried after a backoff (descriptors may come back), never failed over: the next endpoint
    would fail the same way. A TemporaryError still, so callers that treat a send without an
    answer as "may have gone out" (the sender) keep doing so.
    """

    endpoint_fault = False


class NotSent(TemporaryError):
    """No endpoint could be reached to send it: it never left, its nonce is free. A failed
    cycle, not a skip: an endpoint that stays down trips the circuit breaker."""


# --- refused -----------------------------------------------------------------------------------
class RpcError(RebalancerError):
    """A node answered with a JSON-RPC error object: it understood the request and refused it.

    Not retryable, and no reason to fail over: another node would refuse it too. Whatever was
    asked was not done (a refused transaction did not go out).
    """

    def __init__(self, method: str, code: int | None, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data


# --- skip the cycle ------------------------------------------------------------------------------


class SkipCycle(RebalancerError):
    """Nothing is wrong with the bot, but this cycle must not act on what it read."""


class DataError(SkipCycle):
    """Chain data failed a consistency check (wrong block, revert, malformed answer)."""

    endpoint_fault = True  # another endpoint may answer right (wrong chain id, lagging, HTTP 404)


class FeeTooHigh(SkipCycle):
    """Gas is above a configured cap: the rebalance waits (nothing is sent)."""


class SimulationReverted(SkipCycle):
    """The transaction would revert now: nothing was signed, the nonce is untouched."""


class SendRejected(SkipCycle):
    """The node refused the signed transaction; its nonce is free again."""


class PrivateNotResent(SkipCycle):
    """A private transaction would have to go out publicly to be re-sent; it is not."""


class BundleReverted(SkipCycle):
    """The relay's simulation says a transaction of the bundle reverts: nothing was sent."""


# --- halt ----------------------------------------------------------------------------------------
class Halt(RebalancerError):
    """Trading must stop until a person resumes it."""


class NonceTaken(Halt):
    """Another transaction (not ours) used our nonce: a person should look at the wallet."""
