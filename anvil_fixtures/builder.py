"""Build a fixture chain from a scenario: deploy on a fresh anvil, check, dump state + manifest.

The output (anvil_fixtures/build/NAME[-mirror]/) is rebuilt only when an input changes: the
scenario, this code, the contracts, the npm lockfile or the price dataset. A build goes to a
temporary folder and is moved into place only after every check passed, so a failed build
leaves nothing half-built.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, time
from fractions import Fraction
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract

from anvil_fixtures.artifacts import npm_artifact, project_artifact
from anvil_fixtures.scenario import Scenario, load_scenario, scenario_path
from bot.chain.anvil import AnvilProcess
from bot.errors import ConfigError, SetupError
from bot.paths import FIXTURE_BUILD, ROOT, prices_csv
from bot.prices import load_prices

DEV_MNEMONIC = "test test test test test test test test test test test junk"  # anvil's default
DEPLOYER_INDEX, KEEPER_INDEX, FEE_TO_INDEX = 0, 1, 9
MAINNET_CHAIN_ID = 1
BLOCK_INTERVAL = 12  # seconds between fixture blocks, so timestamps (and hashes) are reproducible
PRICE_TOLERANCE = Fraction(1, 10_000)  # pools must sit within 0.01% of the dataset's price
_COPIED_SLOTS = 16  # constructor-written storage moved along with code in mirror mode


def dev_account(index: int) -> LocalAccount:
    """The anvil dev account at `index` (the public test mnemonic: never hold real funds)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(
        DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account


@dataclass(frozen=True)
class Fixture:
    """A built fixture chain: the anvil state file and the manifest describing it."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def state_path(self) -> Path:
        return self.directory / "state.json"

    @property
    def manifest_path(self) -> Path:
        return self.directory / "manifest.json"

    @property
    def chain_id(self) -> int:
        chain_id: int = self.manifest["chain_id"]
        return chain_id

    def start(self, port: int | None = None) -> AnvilProcess:
        """An anvil serving this state (not yet started: use as a context manager)."""
        return AnvilProcess(port=port, chain_id=self.chain_id, load_state=self.state_path)


def output_dir(scenario: str, mirror: bool) -> Path:
    return FIXTURE_BUILD / (Path(scenario).stem + ("-mirror" if mirror else ""))


def inputs_hash(scenario: str, mirror: bool, prices: Path) -> str:
    digest = hashlib.sha256(f"mirror={mirror}".encode())
    inputs = [
        scenario_path(scenario),
        prices,
        ROOT / "package-lock.json",
        *sorted((ROOT / "anvil_fixtures").glob("*.py")),
        ROOT / "bot" / "chain" / "anvil.py",
        ROOT / "bot" / "amm.py",
        *sorted((ROOT / "contracts_abi").glob("*.json")),
    ]
    for path in inputs:
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


def build(scenario: str = "default", *, mirror: bool = False, force: bool = False) -> Fixture:
    """The fixture for `scenario`, built now unless an up-to-date build exists."""
    spec = load_scenario(scenario)
    prices_file = prices_csv()
    prices = spec.usd_prices(load_prices(prices_file))
    reserves = spec.pool_reserves(prices)  # validates every reserve before anything starts
    wanted = inputs_hash(scenario, mirror, prices_file)
    target = output_dir(scenario, mirror)
    manifest_file = target / "manifest.json"
    if not force and manifest_file.is_file() and (target / "state.json").is_file():
        manifest = json.loads(manifest_file.read_text())
        if manifest.get("inputs_hash") == wanted:
            return Fixture(target, manifest)

    FIXTURE_BUILD.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=FIXTURE_BUILD))
    try:
        state = workdir / "state.json"
        genesis = int(datetime.combine(spec.date, time(0), tzinfo=UTC).timestamp())
        chain_id = MAINNET_CHAIN_ID if mirror else spec.chain_id
        anvil = AnvilProcess(chain_id=chain_id, dump_state=state, timestamp=genesis)
        with anvil:
            manifest = _Deployment(anvil.url, spec, prices, reserves, mirror).run()
        if not state.is_file():
            raise SetupError("anvil did not write its state on exit: is the disk full?")
        manifest["inputs_hash"] = wanted
        (workdir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        workdir.chmod(0o755)
        workdir.rename(target)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return Fixture(target, manifest)


class _Deployment:
    """One run of the builder against a fresh anvil."""

    def __init__(
        self,
        url: str,
        spec: Scenario,
        prices: dict[str, Fraction],
        reserves: dict[str, tuple[int, int]],
        mirror: bool,
    ) -> None:
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        self.spec = spec
        self.prices = prices
        self.reserves = reserves
        self.mirror = mirror
        self.deployer = dev_account(DEPLOYER_INDEX).address
        self.keeper = dev_account(KEEPER_INDEX)
        self.fee_to = dev_account(FEE_TO_INDEX).address
        self.tokens: dict[str, Contract] = {}
        self.factories: dict[str, Contract] = {}
        self.routers: dict[str, Contract] = {}
        self.pairs: dict[str, Contract] = {}
        self.expected_balances: dict[str, int] = {}
        self.lp_deposits: dict[str, dict[str, int]] = {}  # pool key -> symbol -> raw deposited

    # --- plumbing -------------------------------------------------------------------------
    def _rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in response:
            raise SetupError(f"{method} failed while building: {response['error']}")
        return response.get("result")

    def _send(self, call: Any, sender: str | None = None, value: int = 0) -> Any:
        tx_hash = call.transact({"from": sender or self.deployer, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        if receipt["status"] != 1:
            raise SetupError(f"fixture transaction {tx_hash.hex()} reverted")
        return receipt

    def _deploy(self, artifact: dict[str, Any], *args: Any, at: str | None = None) -> Contract:
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = self._send(factory.constructor(*args))
        address = receipt["contractAddress"]
        if self.mirror and at is not None:
            address = self._move(address, Web3.to_checksum_address(at))
        deployed: Contract = self.w3.eth.contract(address=address, abi=artifact["abi"])
        return deployed

    def _move(self, source: ChecksumAddress, target: ChecksumAddress) -> ChecksumAddress:
        """Mirror mode: put a deployed contract's code and constructor storage at `target`."""
        self._rpc("anvil_setCode", target, self.w3.to_hex(self.w3.eth.get_code(source)))
        for slot in range(_COPIED_SLOTS):
            value = self.w3.eth.get_storage_at(source, slot)
            if int.from_bytes(value, "big"):
                self._rpc(
                    "anvil_setStorageAt", target, hex(slot), self.w3.to_hex(value.rjust(32, b"\0"))
                )
        return target

    # --- the build ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._rpc("anvil_setBlockTimestampInterval", BLOCK_INTERVAL)
        self._rpc("anvil_setBalance", self.deployer, hex(10**27))
        self._deploy_tokens()
        self._deploy_venues()
        self._seed_pools()
        self._give_lp_positions()
        self._warm_up_fee_pools()
        self._fund_wallet()
        return self._verify()

    def _deploy_tokens(self) -> None:
        token_artifact = project_artifact("FixtureToken")
        for symbol, token in self.spec.tokens.items():
            if token.weth:
                self.tokens[symbol] = self._deploy(npm_artifact("WETH9"), at=token.mainnet)
            else:
                self.tokens[symbol] = self._deploy(
                    token_artifact,
                    symbol,
                    symbol,
                    token.decimals,
                    token.transfer_fee_bps,
                    token.approve_through_zero,
                    at=token.mainnet,
                )

    def _deploy_venues(self) -> None:
        weth = self.tokens[self.spec.weth_symbol()].address
        for name, venue in self.spec.venues.items():
            factory = self._deploy(
                npm_artifact("UniswapV2Factory"), self.deployer, at=venue.mainnet_factory
            )
            self.factories[name] = factory
            self.routers[name] = self._deploy(
                npm_artifact("UniswapV2Router02"), factory.address, weth, at=venue.mainnet_router
            )
            if venue.protocol_fee:
                self._send(factory.functions.setFeeTo(self.fee_to))

    def _seed_pools(self) -> None:
        pair_abi = npm_artifact("UniswapV2Pair")["abi"]
        for pool in self.spec.pools:
            a, b = (self.tokens[symbol].address for symbol in pool.tokens)
            factory = self.factories[pool.venue]
            self._send(factory.functions.createPair(a, b))
            pair = self.w3.eth.contract(
                address=factory.functions.getPair(a, b).call(), abi=pair_abi
            )
            self.pairs[pool.key] = pair
            for symbol, amount in zip(pool.tokens, self.reserves[pool.key], strict=True):
                self._give(symbol, pair.address, amount)
            self._send(pair.functions.mint(self.deployer))

    def _give(self, symbol: str, to: str, amount: int) -> None:
        """Give `to` exactly `amount` raw units of a token, as the deployer."""
        token = self.tokens[symbol]
        if self.spec.tokens[symbol].weth:
            # WETH9 has no mint: wrap the deployer's ETH, then transfer it.
            self._send(token.functions.deposit(), value=amount)
            self._send(token.functions.transfer(to, amount))
        else:
            # Minting sidesteps the transfer fee, so pools and wallets get exact amounts.
            self._send(token.functions.mint(to, amount))

    def _give_lp_positions(self) -> None:
        for lp in self.spec.wallet.lp:
            pool = self.spec.pool_for(lp.pool)
            pair = self.pairs[pool.key]
            share = Fraction(str(lp.usd)) / (2 * Fraction(str(pool.depth_usd)))
            deposit = {}
            for symbol, reserve in zip(pool.tokens, self.reserves[pool.key], strict=True):
                deposit[symbol] = int(reserve * share)
                self._give(symbol, pair.address, deposit[symbol])
            self.lp_deposits[pool.key] = deposit
            self._send(pair.functions.mint(self.keeper.address))

    def _warm_up_fee_pools(self) -> None:
        """Round-trip swaps on protocol-fee venues, so each pair has fees pending since kLast.

        A round trip moves the price by ~fee x size, far inside the 0.01% price check.
        """
        for pool in self.spec.pools:
            if not self.spec.venues[pool.venue].protocol_fee:
                continue
            router = self.routers[pool.venue]
            first, second = pool.tokens
            for symbol in pool.tokens:
                self._send(self.tokens[symbol].functions.approve(router.address, 2**256 - 1))
            for _ in range(self.spec.warmup_trades):
                size = self.reserves[pool.key][0] // 500
                self._give(first, self.deployer, size)
                before = self.tokens[second].functions.balanceOf(self.deployer).call()
                self._send(
                    router.functions.swapExactTokensForTokens(
                        size,
                        0,
                        [self.tokens[first].address, self.tokens[second].address],
                        self.deployer,
                        2**63,
                    )
                )
                got = self.tokens[second].functions.balanceOf(self.deployer).call() - before
                self._send(
                    router.functions.swapExactTokensForTokens(
                        got,
                        0,
                        [self.tokens[second].address, self.tokens[first].address],
                        self.deployer,
                        2**63,
                    )
                )

    def _fund_wallet(self) -> None:
        wallet = self.keeper.address
        self._rpc(
            "anvil_setBalance", wallet, hex(int(Fraction(str(self.spec.wallet.eth)) * 10**18))
        )
        for symbol, usd in self.spec.wallet.tokens_usd.items():
            amount = self.spec.raw_amount(symbol, usd, self.prices)
            self._give(symbol, wallet, amount)
            self.expected_balances[symbol] = amount

    # --- the checks -----------------------------------------------------------------------
    def _verify(self) -> dict[str, Any]:
        """Read back every pool price and balance; describe the chain in the manifest."""
        wallet = self.keeper.address
        pools = []
        for pool in self.spec.pools:
            pair = self.pairs[pool.key]
            token0 = pair.functions.token0().call()
            reserve0, reserve1, _ = pair.functions.getReserves().call()
            symbols = {self.tokens[s].address: s for s in pool.tokens}
            symbol0 = symbols[token0]
            symbol1 = next(s for s in pool.tokens if s != symbol0)
            dec0, dec1 = self.spec.tokens[symbol0].decimals, self.spec.tokens[symbol1].decimals
            mid = Fraction(reserve1, 10**dec1) / Fraction(reserve0, 10**dec0)
            want = self.prices[symbol0] / self.prices[symbol1]
            if abs(mid / want - 1) > PRICE_TOLERANCE:
                raise SetupError(
                    f"pool {pool.key}: price {float(mid):.8g} is off the dataset's "
                    f"{float(want):.8g}"
                )
            pools.append(
                {
                    "key": pool.key,
                    "venue": pool.venue,
                    "address": pair.address,
                    "token0": symbol0,
                    "token1": symbol1,
                    "reserve0": str(reserve0),
                    "reserve1": str(reserve1),
                    "total_supply": str(pair.functions.totalSupply().call()),
                    "k_last": str(pair.functions.kLast().call()),
                    "wallet_lp": str(pair.functions.balanceOf(wallet).call()),
                    "wallet_lp_deposit": [
                        str(self.lp_deposits.get(pool.key, {}).get(symbol, 0))
                        for symbol in (symbol0, symbol1)
                    ],
                    "price_token1_per_token0": float(mid),
                }
            )
        for symbol, amount in self.expected_balances.items():
            held = self.tokens[symbol].functions.balanceOf(wallet).call()
            if held != amount:
                raise SetupError(f"wallet {symbol} balance {held} != expected {amount}")
        for lp in self.spec.wallet.lp:
            pair = self.pairs[self.spec.pool_for(lp.pool).key]
            if pair.functions.balanceOf(wallet).call() <= 0:
                raise SetupError(f"wallet has no LP tokens in {lp.pool}")
        venues = {}
        for name, venue in self.spec.venues.items():
            fee_to = self.factories[name].functions.feeTo().call()
            if (fee_to != "0x" + "0" * 40) != venue.protocol_fee:
                raise SetupError(
                    f"venue {name}: feeTo is {fee_to}, protocol_fee is {venue.protocol_fee}"
                )
            venues[name] = {
                "factory": self.factories[name].address,
                "router": self.routers[name].address,
                "fee_to": fee_to,
                "protocol_fee": venue.protocol_fee,
            }
        block = self.w3.eth.get_block("latest")
        return {
            "scenario": self.spec.name,
            "date": self.spec.date.isoformat(),
            "mirror": self.mirror,
            "chain_id": self.w3.eth.chain_id,
            "block_number": block["number"],
            "block_hash": self.w3.to_hex(block["hash"]),
            "block_timestamp": block["timestamp"],
            "deployer": self.deployer,
            "keeper": {
                "address": wallet,
                "private_key": self.w3.to_hex(self.keeper.key),
                "note": "anvil dev key",
            },
            "tokens": {
                symbol: {
                    "address": contract.address,
                    "decimals": self.spec.tokens[symbol].decimals,
                    "usd_price": float(self.prices[symbol]),
                    "transfer_fee_bps": self.spec.tokens[symbol].transfer_fee_bps,
                    "approve_through_zero": self.spec.tokens[symbol].approve_through_zero,
                    "weth": self.spec.tokens[symbol].weth,
                }
                for symbol, contract in self.tokens.items()
            },
            "venues": venues,
            "pools": pools,
            "wallet": {
                "eth_wei": str(self.w3.eth.get_balance(wallet)),
                "tokens": {
                    symbol: str(amount) for symbol, amount in self.expected_balances.items()
                },
            },
        }


def main() -> None:  # pragma: no cover - convenience for `python -m anvil_fixtures.builder`
    import sys

    try:
        fixture = build(
            sys.argv[1] if len(sys.argv) > 1 else "default", mirror="--mirror" in sys.argv
        )
    except (ConfigError, SetupError) as err:
        raise SystemExit(f"error: {err}") from None
    print(fixture.manifest_path)


if __name__ == "__main__":  # pragma: no cover
    main()
