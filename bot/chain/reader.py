"""The Snapshot reader: every value the keeper needs, pinned to one block, in two round trips.

Round trip 1 fetches the head block (number, hash, timestamp, base fee). Round trip 2 is one
JSON-RPC batch holding a single eth_call pinned to that block hash (EIP-1898), whose init code
is the deployless SnapshotReader: the node runs every balanceOf / getReserves / ... inside one
EVM execution, so the answer cannot mix blocks and its size does not grow the round trips. When a
TWAP window is configured, the same batch carries a second call at the block one window back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address

from bot.chain import abi
from bot.chain.rpc import RpcClient, RpcError, RpcRequest
from bot.errors import ConfigError, DataError
from bot.settings import Settings
from bot.types import Address, Pool, PoolObservation, PoolState, Snapshot

_READER_OUTPUT = ("uint256", "uint256", "uint256", "uint256", "uint256[]", "bool[]", "bytes[]")
_ZERO = "0x" + "0" * 40


@dataclass(frozen=True, slots=True)
class _Read:
    target: str
    calldata: bytes
    what: str  # for error messages: "USDC.balanceOf(wallet)"


def _reader_call(holders: Sequence[str], reads: Sequence[_Read]) -> dict[str, str]:
    args = encode(
        ["address[]", "address[]", "bytes[]"],
        [list(holders), [r.target for r in reads], [r.calldata for r in reads]],
    )
    return {"data": "0x" + (abi.snapshot_reader_code() + args).hex()}


def _decode_reader(
    raw: Any, reads: Sequence[_Read]
) -> tuple[int, int, int, int, list[int], list[bytes]]:
    if not isinstance(raw, str) or not raw.startswith("0x"):
        raise DataError(f"the snapshot eth_call returned {type(raw).__name__}, not hex data")
    try:
        number, timestamp, base_fee, chain_id, eth, ok, results = decode(
            list(_READER_OUTPUT), bytes.fromhex(raw[2:])
        )
    except (DecodingError, ValueError) as err:
        raise DataError(f"the snapshot answer is malformed or truncated ({err})") from None
    if len(ok) != len(reads) or len(results) != len(reads):
        raise DataError(f"the snapshot answer has {len(results)} results for {len(reads)} reads")
    for read, success in zip(reads, ok, strict=True):
        if not success:
            raise DataError(f"{read.what} reverted")
    return number, timestamp, base_fee, chain_id, list(eth), list(results)


def _words(data: bytes, count: int, what: str) -> list[int]:
    if len(data) < 32 * count:
        raise DataError(f"{what} returned {len(data)} bytes, expected {32 * count}")
    return [int.from_bytes(data[32 * i : 32 * i + 32], "big") for i in range(count)]


def _address(data: bytes, what: str) -> str:
    (word,) = _words(data, 1, what)
    if word >> 160:
        raise DataError(f"{what} returned a value that is not an address")
    return str(to_checksum_address(word.to_bytes(20, "big")))


class SnapshotReader:
    """Reads Snapshots for one wallet and a fixed set of pools."""

    def __init__(self, rpc: RpcClient, settings: Settings, pools: Sequence[Pool]) -> None:
        self.rpc = rpc
        self.settings = settings
        self.pools = tuple(pools)
        self.wallet = Address(settings.wallet.address)
        self._reads = self._snapshot_reads()
        self._history_reads = [
            _Read(pool.address, selector, f"pool {pool.key} {name}")
            for pool in self.pools
            for name, selector in (
                ("getReserves", abi.GET_RESERVES),
                ("price0CumulativeLast", abi.PRICE0_CUMULATIVE),
                ("price1CumulativeLast", abi.PRICE1_CUMULATIVE),
            )
        ]
        window = settings.valuation.twap_window_seconds
        self.history_blocks = math.ceil(window / settings.chain.block_time_seconds)

    @classmethod
    async def connect(cls, rpc: RpcClient, settings: Settings) -> SnapshotReader:
        """Resolve pool addresses (factory.getPair) and check token decimals, in one read."""
        return cls(rpc, settings, await resolve_pools(rpc, settings))

    def _snapshot_reads(self) -> list[_Read]:
        wallet = abi.address_arg(self.wallet)
        reads = [
            _Read(token.address, abi.BALANCE_OF + wallet, f"{symbol}.balanceOf(wallet)")
            for symbol, token in self.settings.tokens.items()
        ]
        for pool in self.pools:
            for name, calldata in (
                ("token0", abi.TOKEN0),
                ("token1", abi.TOKEN1),
                ("getReserves", abi.GET_RESERVES),
                ("totalSupply", abi.TOTAL_SUPPLY),
                ("kLast", abi.K_LAST),
                ("price0CumulativeLast", abi.PRICE0_CUMULATIVE),
                ("price1CumulativeLast", abi.PRICE1_CUMULATIVE),
                ("balanceOf(wallet)", abi.BALANCE_OF + wallet),
            ):
                reads.append(_Read(pool.address, calldata, f"pool {pool.key} {name}"))
        for venue, spec in self.settings.venues.items():
            reads.append(_Read(spec.factory, abi.FEE_TO, f"venue {venue} factory.feeTo"))
        return reads

    async def snapshot(self) -> Snapshot:
        (head,) = await self.rpc.batch([RpcRequest("eth_getBlockByNumber", ("latest", False))])
        if not isinstance(head, dict):
            raise DataError("the node returned no head block")
        try:
            number = int(head["number"], 16)
            block_hash = str(head["hash"])
            timestamp = int(head["timestamp"], 16)
            base_fee = int(head.get("baseFeePerGas") or "0x0", 16)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"the head block is malformed ({err})") from None

        requests = [
            RpcRequest(
                "eth_call", (_reader_call([self.wallet], self._reads), {"blockHash": block_hash})
            )
        ]
        history_block = number - self.history_blocks
        if history_block >= 1:
            call = _reader_call([], self._history_reads)
            requests.append(RpcRequest("eth_call", (call, hex(history_block))))
        answers = await self.rpc.batch(requests, allow_errors=True)
        if isinstance(answers[0], RpcError):
            raise DataError(f"the snapshot read at block {number} failed: {answers[0]}")

        got_number, _, _, chain_id, eth, results = _decode_reader(answers[0], self._reads)
        if got_number != number:
            raise DataError(
                f"the node answered from block {got_number} when asked for block {number} "
                f"({block_hash}): refusing a snapshot that mixes blocks"
            )
        if chain_id != self.settings.chain.chain_id:
            raise DataError(
                f"the node runs chain id {chain_id}, the config says {self.settings.chain.chain_id}"
            )

        history, history_timestamp = self._history(answers[1] if len(answers) > 1 else None)
        return self._assemble(
            number, block_hash, timestamp, base_fee, eth[0], results, history, history_timestamp
        )

    def _history(self, answer: Any) -> tuple[tuple[PoolObservation, ...], int | None]:
        # The window-old read is best effort: a node without that block's state (not an archive
        # node) leaves the TWAP unavailable, and the price guard treats that per its config.
        if answer is None or isinstance(answer, RpcError):
            return (), None
        try:
            _, timestamp, _, _, _, results = _decode_reader(answer, self._history_reads)
        except DataError:
            return (), None
        observations = []
        for i, pool in enumerate(self.pools):
            reserves, cum0, cum1 = results[3 * i : 3 * i + 3]
            try:
                r0, r1, t_last = _words(reserves, 3, f"pool {pool.key} getReserves")
                (p0,) = _words(cum0, 1, f"pool {pool.key} price0CumulativeLast")
                (p1,) = _words(cum1, 1, f"pool {pool.key} price1CumulativeLast")
            except DataError:
                continue  # the pool did not exist yet a window ago
            observations.append(PoolObservation(pool.key, timestamp, r0, r1, t_last, p0, p1))
        return tuple(observations), timestamp

    def _assemble(
        self,
        number: int,
        block_hash: str,
        timestamp: int,
        base_fee: int,
        eth_balance: int,
        results: list[bytes],
        history: tuple[PoolObservation, ...],
        history_timestamp: int | None,
    ) -> Snapshot:
        it = iter(zip(self._reads, results, strict=True))
        balances = []
        for symbol in self.settings.tokens:
            read, data = next(it)
            balances.append((symbol, _words(data, 1, read.what)[0]))
        pool_data = []
        for pool in self.pools:
            values = {}
            for _ in range(8):
                read, data = next(it)
                values[read.what.rsplit(" ", 1)[-1]] = (read, data)
            pool_data.append((pool, values))
        fee_to = []
        for venue in self.settings.venues:
            read, data = next(it)
            fee_to.append((venue, Address(_address(data, read.what))))
        fee_on = {venue: address != _ZERO for venue, address in fee_to}

        states = []
        addresses = {symbol: token.address for symbol, token in self.settings.tokens.items()}
        for pool, values in pool_data:
            token0 = _address(values["token0"][1], values["token0"][0].what)
            token1 = _address(values["token1"][1], values["token1"][0].what)
            if (token0, token1) != (addresses[pool.token0], addresses[pool.token1]):
                raise DataError(
                    f"pool {pool.key} at {pool.address} holds other tokens than configured"
                )
            r0, r1, t_last = _words(values["getReserves"][1], 3, values["getReserves"][0].what)
            states.append(
                PoolState(
                    pool=pool,
                    reserve0=r0,
                    reserve1=r1,
                    block_timestamp_last=t_last,
                    total_supply=self._word(values, "totalSupply"),
                    k_last=self._word(values, "kLast"),
                    price0_cumulative_last=self._word(values, "price0CumulativeLast"),
                    price1_cumulative_last=self._word(values, "price1CumulativeLast"),
                    fee_on=fee_on[pool.venue],
                    wallet_lp=self._word(values, "balanceOf(wallet)"),
                )
            )
        return Snapshot(
            chain_id=self.settings.chain.chain_id,
            block_number=number,
            block_hash=block_hash,
            timestamp=timestamp,
            base_fee=base_fee,
            wallet=self.wallet,
            eth_balance=eth_balance,
            balances=tuple(balances),
            pools=tuple(states),
            fee_to=tuple(fee_to),
            history=history,
            history_timestamp=history_timestamp,
        )

    @staticmethod
    def _word(values: dict[str, tuple[_Read, bytes]], name: str) -> int:
        read, data = values[name]
        return _words(data, 1, read.what)[0]


async def resolve_pools(rpc: RpcClient, settings: Settings) -> tuple[Pool, ...]:
    """Pool addresses from factory.getPair where not configured, and token decimals checked."""
    reads = [
        _Read(token.address, abi.DECIMALS, f"{symbol}.decimals()")
        for symbol, token in settings.tokens.items()
    ]
    for spec in settings.pools:
        a, b = (settings.tokens[s].address for s in spec.tokens)
        venue = settings.venues[spec.venue]
        reads.append(
            _Read(
                venue.factory,
                abi.GET_PAIR + abi.address_arg(a) + abi.address_arg(b),
                f"pool {spec.key} getPair",
            )
        )
    (answer,) = await rpc.batch([RpcRequest("eth_call", (_reader_call([], reads), "latest"))])
    _, _, _, _, _, results = _decode_reader(answer, reads)
    for (symbol, token), data in zip(settings.tokens.items(), results, strict=False):
        (decimals,) = _words(data, 1, f"{symbol}.decimals()")
        if decimals != token.decimals:
            raise ConfigError(
                f"tokens.{symbol}.decimals: the config says {token.decimals}, the token at "
                f"{token.address} says {decimals}"
            )
    pools = []
    for spec, data in zip(settings.pools, results[len(settings.tokens) :], strict=True):
        found = _address(data, f"pool {spec.key} getPair")
        if found == _ZERO:
            raise ConfigError(
                f"pools: venue {spec.venue} has no {spec.tokens[0]}/{spec.tokens[1]} pair"
            )
        if spec.address is not None and spec.address != found:
            raise ConfigError(f"pools: {spec.key} is at {found}, the config says {spec.address}")
        a, b = spec.tokens
        token0, token1 = (
            (a, b)
            if int(settings.tokens[a].address, 16) < int(settings.tokens[b].address, 16)
            else (b, a)
        )
        pools.append(
            Pool(
                key=spec.key,
                venue=spec.venue,
                address=Address(found),
                token0=token0,
                token1=token1,
                fee_bps=settings.venues[spec.venue].fee_bps,
                factory=Address(settings.venues[spec.venue].factory),
            )
        )
    return tuple(pools)
