// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// Read-only batch reader. It is never deployed: the bot places its runtime code at an unused
/// address through eth_call's state override and calls it, so one eth_call performs every read of
/// a snapshot inside a single EVM execution (one block, by construction) on any node that
/// supports state overrides, with no contract to deploy or trust. Answers are flat words, and a
/// read that reverts or answers short is reported by index instead of failing the whole call.
contract SnapshotReader {
    uint256 private constant READ_GAS = 1_000_000; // one hostile token cannot starve the rest
    uint256 public constant WORDS_PER_PAIR = 10;

    struct Cursor {
        uint256[] words;
        uint256 next;
        uint256[] failed;
        uint256 failedCount;
    }

    /// words: each token's balanceOf(wallet); per pair token0, token1, reserve0, reserve1,
    /// blockTimestampLast, totalSupply, kLast, price0CumulativeLast, price1CumulativeLast,
    /// balanceOf(wallet); each factory's feeTo. failed: indexes into words that could not be read.
    /// header: block number, timestamp, base fee, chain id, the wallet's ETH balance.
    function snapshot(
        address wallet,
        address[] calldata tokens,
        address[] calldata pairs,
        address[] calldata factories
    ) external view returns (uint256[5] memory header, uint256[] memory words, uint256[] memory failed) {
        uint256 size = tokens.length + pairs.length * WORDS_PER_PAIR + factories.length;
        Cursor memory c = Cursor(new uint256[](size), 0, new uint256[](size), 0);
        bytes memory balanceCall = abi.encodeWithSelector(0x70a08231, wallet);
        for (uint256 i = 0; i < tokens.length; i++) {
            _read(c, tokens[i], balanceCall, 1);
        }
        for (uint256 i = 0; i < pairs.length; i++) {
            _readPair(c, pairs[i], balanceCall);
        }
        for (uint256 i = 0; i < factories.length; i++) {
            _read(c, factories[i], abi.encodeWithSelector(0x017e7e58), 1); // feeTo()
        }
        failed = c.failed;
        uint256 failedCount = c.failedCount;
        assembly {
            mstore(failed, failedCount)
        }
        header = [block.number, block.timestamp, block.basefee, block.chainid, wallet.balance];
        return (header, c.words, failed);
    }

    function _readPair(Cursor memory c, address pair, bytes memory balanceCall) private view {
        _read(c, pair, abi.encodeWithSelector(0x0dfe1681), 1); // token0()
        _read(c, pair, abi.encodeWithSelector(0xd21220a7), 1); // token1()
        _read(c, pair, abi.encodeWithSelector(0x0902f1ac), 3); // getReserves()
        _read(c, pair, abi.encodeWithSelector(0x18160ddd), 1); // totalSupply()
        _read(c, pair, abi.encodeWithSelector(0x7464fc3d), 1); // kLast()
        _read(c, pair, abi.encodeWithSelector(0x5909c0d5), 1); // price0CumulativeLast()
        _read(c, pair, abi.encodeWithSelector(0x5a3d5493), 1); // price1CumulativeLast()
        _read(c, pair, balanceCall, 1); // balanceOf(wallet)
    }

    /// Generic view multicall for one-off reads (decimals, getPair): results with success flags.
    function aggregate(address[] calldata targets, bytes[] calldata calls)
        external
        view
        returns (uint256 blockNumber, bool[] memory ok, bytes[] memory results)
    {
        require(targets.length == calls.length, "length mismatch");
        ok = new bool[](calls.length);
        results = new bytes[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            (ok[i], results[i]) = targets[i].staticcall{gas: READ_GAS}(calls[i]);
        }
        return (block.number, ok, results);
    }

    function _read(Cursor memory c, address target, bytes memory data, uint256 count) private view {
        (bool ok, bytes memory ret) = target.staticcall{gas: READ_GAS}(data);
        if (ok && ret.length >= 32 * count) {
            for (uint256 k = 0; k < count; k++) {
                uint256 value;
                assembly {
                    value := mload(add(ret, add(32, mul(k, 32))))
                }
                c.words[c.next + k] = value;
            }
        } else {
            for (uint256 k = 0; k < count; k++) {
                c.failed[c.failedCount++] = c.next + k;
            }
        }
        c.next += count;
    }
}
