"""A transaction of ours in flight (`Pending`: every signed version of one nonce), and one mined
(`Mined`). The sender makes and watches them (`bot.execution.sender`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.execution.fees import Fees
from bot.journal import TxRecord


@dataclass
class Pending:
    """One nonce in flight: every signed version of it (replacements included)."""

    nonce: int
    what: str
    tx: dict[str, Any]  # the unsigned fields, for replacements
    fees: Fees
    versions: list[tuple[str, bytes]] = field(default_factory=list)  # (hash, raw), newest last
    sent_block: int = 0
    private: bool = False
    rebalance_id: int | None = None
    covers: tuple[int, ...] = ()  # the plan's actions it carries out (none for a cancel)

    @property
    def tx_hash(self) -> str:
        return self.versions[-1][0]

    @classmethod
    def of(cls, record: TxRecord) -> Pending:
        """A journaled transaction taken up again (after a restart): its one signed version."""
        return cls(
            record.nonce,
            record.what,
            dict(record.unsigned),
            Fees(0, record.max_priority_fee, record.max_fee),
            versions=[(record.tx_hash, record.raw)],
            sent_block=record.sent_block or 0,
            private=record.private,
            rebalance_id=record.rebalance_id,
            covers=record.covers,
        )


@dataclass(frozen=True, slots=True)
class Mined:
    tx_hash: str
    nonce: int
    block_number: int
    block_hash: str
    gas_used: int
    effective_gas_price: int
    status: int
    replaced: int  # how many times it was replaced before this one mined
    rebroadcasts: int
    contract_address: str | None = None
