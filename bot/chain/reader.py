"""The Snapshot reader: every value the keeper needs, pinned to one block, in two round trips.

Round trip 1 fetches the head block (number, hash, timestamp, base fee). Round trip 2 is one
JSON-RPC batch holding one eth_call pinned to that block hash (EIP-1898) to the SnapshotReader,
whose runtime code the call itself supplies as a state override: the node runs every balanceOf /
getReserves / ... read inside one EVM execution, so the answer cannot mix blocks and its cost in
round trips does not grow with the number of pools. When a TWAP window is configured, the same
batch carries a second call at the block one window back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address

from bot.chain import abi
from bot.chain.rpc import RpcClient, RpcRequest
from bot.errors import ConfigError, DataError, RpcError
from bot.settings import Settings
from bot.types import Address, Pool, PoolObservation, PoolState, Snapshot

_ZERO = "0x" + "0" * 40
PAIR_FIELDS = (
    "token0",
    "token1",
    "reserve0",
    "reserve1",
    "blockTimestampLast",
    "totalSupply",
    "kLast",
    "price0CumulativeLast",
    "price1CumulativeLast",
    "balanceOf(wallet)",
)
_WORDS_PER_PAIR = len(PAIR_FIELDS)


def _eth_call(selector: bytes, types: list[str], args: list[Any], block: Any) -> RpcRequest:
    tx = {"to": abi.READER_ADDRESS, "data": "0x" + (selector + encode(types, args)).hex()}
    override = {abi.READER_ADDRESS: {"code": abi.snapshot_reader_runtime()}}
    return RpcRequest("eth_call", (tx, block, override))


def _hex_bytes(raw: Any, what: str) -> bytes:
    if not isinstance(raw, str) or not raw.startswith("0x"):
        raise DataError(f"{what}: the node returned {type(raw).__name__}, not hex data")
    try:
        return bytes.fromhex(raw[2:])
    except ValueError:
        raise DataError(f"{what}: the answer is malformed or truncated (not valid hex)") from None


def _decode(types: list[str], raw: Any, what: str) -> tuple[Any, ...]:
    try:
        return tuple(decode(types, _hex_bytes(raw, what)))
    except (DecodingError, ValueError, OverflowError) as err:
        raise DataError(f"{what}: the answer is malformed or truncated ({err})") from None


def _as_address(word: int, what: str) -> str:
    if word >> 160:
        raise DataError(f"{what} returned a value that is not an address")
    return str(to_checksum_address(word.to_bytes(20, "big")))


class SnapshotReader:
    """Reads Snapshots for one wallet and a fixed set of pools."""

    def __init__(self, rpc: RpcClient, settings: Settings, pools: Sequence[Pool]) -> None:
        self.rpc = rpc
        self.settings = settings
        self.pools = tuple(pools)
        execution = settings.execution
        # In vault mode the executor holds the portfolio and trades; the keeper wallet's own
        # holdings (gas money, anything not deposited) still count toward the valuation.
        self.vault = execution.executor_mode == "vault" and execution.executor is not None
        self.wallet = Address(
            execution.executor if self.vault and execution.executor else settings.wallet.address
        )
        self.owner = Address(settings.wallet.address)
        self.symbols = list(settings.tokens)
        self.venues = list(settings.venues)
        window = settings.valuation.twap_window_seconds
        self.history_blocks = math.ceil(window / settings.chain.block_time_seconds)

    @classmethod
    async def connect(cls, rpc: RpcClient, settings: Settings) -> SnapshotReader:
        """Resolve pool addresses (factory.getPair) and check token decimals, in one read."""
        return cls(rpc, settings, await resolve_pools(rpc, settings))

    def _request(self, block: Any, *, full: bool, holder: str | None = None) -> RpcRequest:
        tokens = [self.settings.tokens[s].address for s in self.symbols] if full else []
        factories = [self.settings.venues[v].factory for v in self.venues] if full else []
        return _eth_call(
            abi.SNAPSHOT,
            ["address", "address[]", "address[]", "address[]"],
            [holder or self.wallet, tokens, [p.address for p in self.pools], factories],
            block,
        )

    def _describe(self, index: int, full: bool) -> str:
        n_tokens = len(self.symbols) if full else 0
        if index < n_tokens:
            return f"{self.symbols[index]}.balanceOf(wallet)"
        index -= n_tokens
        if index < len(self.pools) * _WORDS_PER_PAIR:
            pool = self.pools[index // _WORDS_PER_PAIR]
            return f"pool {pool.key} {PAIR_FIELDS[index % _WORDS_PER_PAIR]}"
        return f"venue {self.venues[index - len(self.pools) * _WORDS_PER_PAIR]} factory.feeTo"

    def _words(self, raw: Any, full: bool, what: str) -> tuple[list[int], list[int], list[int]]:
        header, words, failed = _decode(["uint256[5]", "uint256[]", "uint256[]"], raw, what)
        expected = len(self.pools) * _WORDS_PER_PAIR + (
            len(self.symbols) + len(self.venues) if full else 0
        )
        if len(words) != expected:
            raise DataError(f"{what}: {len(words)} values for {expected} reads")
        return list(header), list(words), list(failed)

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

        pinned = {"blockHash": block_hash}
        requests = [self._request(pinned, full=True)]
        if self.vault:
            requests.append(self._request(pinned, full=True, holder=self.owner))
        history_block = number - self.history_blocks
        if history_block >= 1:
            requests.append(self._request(hex(history_block), full=False))
        answers = await self.rpc.batch(requests, allow_errors=True)
        owner_holdings: tuple[tuple[str, int], ...] = ()
        if self.vault:
            owner_answer = answers.pop(1)
            if isinstance(owner_answer, RpcError):
                raise DataError(f"the wallet read at block {number} failed: {owner_answer}")
            owner_header, owner_words, owner_failed = self._words(
                owner_answer, True, "the wallet read"
            )
            if owner_failed:
                raise DataError(f"wallet {self._describe(owner_failed[0], True)} reverted")
            owner_holdings = self._holdings(owner_header[4], owner_words)
        if isinstance(answers[0], RpcError):
            raise DataError(f"the snapshot read at block {number} failed: {answers[0]}")

        header, words, failed = self._words(answers[0], True, "the snapshot read")
        if failed:
            raise DataError(f"{self._describe(failed[0], True)} reverted or answered short")
        got_number, got_timestamp, _, chain_id, eth_balance = header
        if got_number != number or got_timestamp != timestamp:
            raise DataError(
                f"the node answered from block {got_number} when asked for block {number} "
                f"({block_hash}): refusing a snapshot that mixes blocks"
            )
        if chain_id != self.settings.chain.chain_id:
            raise DataError(
                f"the node runs chain id {chain_id}, the config says {self.settings.chain.chain_id}"
            )
        history, history_timestamp = self._history(answers[1] if len(answers) > 1 else None)
        snapshot = self._assemble(
            number, block_hash, timestamp, base_fee, eth_balance, words, history, history_timestamp
        )
        return replace(snapshot, other_holdings=owner_holdings)

    def _holdings(self, eth_balance: int, words: list[int]) -> tuple[tuple[str, int], ...]:
        """Another account's ETH, tokens and LP tokens, by symbol or pool key."""
        n = len(self.symbols)
        out = [("ETH", eth_balance), *zip(self.symbols, words[:n], strict=True)]
        for i, pool in enumerate(self.pools):
            out.append((pool.key, words[n + i * _WORDS_PER_PAIR + 9]))
        return tuple((name, amount) for name, amount in out if amount)

    def _history(self, answer: Any) -> tuple[tuple[PoolObservation, ...], int | None]:
        # The window-old read is best effort: a node without that block's state (not an archive
        # node) leaves the TWAP unavailable, and the price guard treats that per its config.
        if answer is None or isinstance(answer, RpcError):
            return (), None
        try:
            header, words, failed = self._words(answer, False, "the TWAP history read")
        except DataError:
            return (), None
        unreadable = {index // _WORDS_PER_PAIR for index in failed}  # pools not deployed yet
        observations = []
        for i, pool in enumerate(self.pools):
            if i in unreadable:
                continue
            w = words[i * _WORDS_PER_PAIR : (i + 1) * _WORDS_PER_PAIR]
            observations.append(PoolObservation(pool.key, header[1], w[2], w[3], w[4], w[7], w[8]))
        return tuple(observations), header[1]

    def _assemble(
        self,
        number: int,
        block_hash: str,
        timestamp: int,
        base_fee: int,
        eth_balance: int,
        words: list[int],
        history: tuple[PoolObservation, ...],
        history_timestamp: int | None,
    ) -> Snapshot:
        n_tokens = len(self.symbols)
        balances = tuple(zip(self.symbols, words[:n_tokens], strict=True))
        fee_words = words[n_tokens + len(self.pools) * _WORDS_PER_PAIR :]
        fee_to = tuple(
            (venue, Address(_as_address(word, f"venue {venue} factory.feeTo")))
            for venue, word in zip(self.venues, fee_words, strict=True)
        )
        fee_on = {venue: address != _ZERO for venue, address in fee_to}
        addresses = {symbol: token.address for symbol, token in self.settings.tokens.items()}
        states = []
        for i, pool in enumerate(self.pools):
            start = n_tokens + i * _WORDS_PER_PAIR
            w = words[start : start + _WORDS_PER_PAIR]
            token0 = _as_address(w[0], f"pool {pool.key} token0")
            token1 = _as_address(w[1], f"pool {pool.key} token1")
            if (token0, token1) != (addresses[pool.token0], addresses[pool.token1]):
                raise DataError(
                    f"pool {pool.key} at {pool.address} holds other tokens than configured"
                )
            states.append(
                PoolState(
                    pool=pool,
                    reserve0=w[2],
                    reserve1=w[3],
                    block_timestamp_last=w[4],
                    total_supply=w[5],
                    k_last=w[6],
                    price0_cumulative_last=w[7],
                    price1_cumulative_last=w[8],
                    fee_on=fee_on[pool.venue],
                    wallet_lp=w[9],
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
            balances=balances,
            pools=tuple(states),
            fee_to=fee_to,
            history=history,
            history_timestamp=history_timestamp,
        )


async def resolve_pools(rpc: RpcClient, settings: Settings) -> tuple[Pool, ...]:
    """Pool addresses from factory.getPair where not configured, and token decimals checked."""
    targets: list[str] = []
    calls: list[bytes] = []
    for token in settings.tokens.values():
        targets.append(token.address)
        calls.append(abi.DECIMALS)
    for spec in settings.pools:
        a, b = (settings.tokens[s].address for s in spec.tokens)
        targets.append(settings.venues[spec.venue].factory)
        calls.append(abi.GET_PAIR + abi.address_arg(a) + abi.address_arg(b))
    request = _eth_call(abi.AGGREGATE, ["address[]", "bytes[]"], [targets, calls], "latest")
    (answer,) = await rpc.batch([request])
    _, ok, results = _decode(["uint256", "bool[]", "bytes[]"], answer, "the setup read")
    if len(ok) != len(calls) or len(results) != len(calls):
        raise DataError(f"the setup read returned {len(results)} results for {len(calls)} reads")

    def word(i: int, what: str) -> int:
        if not ok[i] or len(results[i]) < 32:
            raise ConfigError(f"{what} reverted: is the address right, and is it on this chain?")
        return int.from_bytes(results[i][:32], "big")

    for i, (symbol, token) in enumerate(settings.tokens.items()):
        decimals = word(i, f"tokens.{symbol}: decimals() at {token.address}")
        if decimals != token.decimals:
            raise ConfigError(
                f"tokens.{symbol}.decimals: the config says {token.decimals}, the token at "
                f"{token.address} says {decimals}"
            )
    pools = []
    offset = len(settings.tokens)
    for i, spec in enumerate(settings.pools):
        venue = settings.venues[spec.venue]
        what = f"pools[{i}] ({spec.key}): factory.getPair at {venue.factory}"
        found = _as_address(word(offset + i, what), what)
        if found == _ZERO:
            raise ConfigError(
                f"pools[{i}]: venue {spec.venue} has no {spec.tokens[0]}/{spec.tokens[1]} pair"
            )
        if spec.address is not None and spec.address != found:
            raise ConfigError(
                f"pools[{i}].address: {spec.key} is at {found}, the config says {spec.address}"
            )
        a, b = spec.tokens
        a_first = int(settings.tokens[a].address, 16) < int(settings.tokens[b].address, 16)
        token0, token1 = (a, b) if a_first else (b, a)
        pools.append(
            Pool(
                key=spec.key,
                venue=spec.venue,
                address=Address(found),
                token0=token0,
                token1=token1,
                fee_bps=venue.fee_bps,
                factory=Address(venue.factory),
            )
        )
    return tuple(pools)
