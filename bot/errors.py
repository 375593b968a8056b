"""Errors, grouped by what the caller does next.

RebalancerError
├── ConfigError        bad input from the user: fix the file or flag named in the message
├── SetupError         a missing tool or a busy resource: the message says how to fix it
├── TemporaryError     the network or a node hiccupped: retry (the RPC layer does, by policy)
├── SkipCycle          this cycle's data cannot be trusted: record it, try again next cycle
│   └── DataError      a read returned something impossible (names the pool or token)
└── Halt               stop trading until a person looks (circuit breaker)
"""

from __future__ import annotations


class RebalancerError(Exception):
    """Root of every error the bot raises on purpose."""


class ConfigError(RebalancerError):
    """Invalid configuration or scenario; the message names the field."""


class SetupError(RebalancerError):
    """The environment lacks something (a binary, a free port); the message says what to do."""


class TemporaryError(RebalancerError):
    """A transient failure at the RPC boundary; safe to retry."""


class SkipCycle(RebalancerError):
    """Nothing is wrong with the bot, but this cycle must not act on what it read."""


class DataError(SkipCycle):
    """Chain data failed a consistency check (wrong block, revert, malformed answer)."""


class Halt(RebalancerError):
    """Trading must stop until a person resumes it."""
