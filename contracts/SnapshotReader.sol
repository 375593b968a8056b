// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// A deployless reader: never deployed, only run as the init code of an eth_call. Its constructor
/// performs every read of one snapshot inside a single EVM execution, so all values come from the
/// same block and the whole snapshot costs one RPC request on any node, with no contract to trust
/// or deploy. Each call's success flag is returned so the caller can name the read that failed.
contract SnapshotReader {
    constructor(address[] memory ethHolders, address[] memory targets, bytes[] memory calls) {
        require(targets.length == calls.length, "length mismatch");
        uint256[] memory ethBalances = new uint256[](ethHolders.length);
        for (uint256 i = 0; i < ethHolders.length; i++) {
            ethBalances[i] = ethHolders[i].balance;
        }
        bool[] memory ok = new bool[](calls.length);
        bytes[] memory results = new bytes[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            // A bounded gas stipend per read: one hostile token cannot starve the others.
            (ok[i], results[i]) = targets[i].staticcall{gas: 1_000_000}(calls[i]);
        }
        bytes memory out = abi.encode(
            block.number, block.timestamp, block.basefee, block.chainid, ethBalances, ok, results
        );
        assembly {
            return(add(out, 32), mload(out))
        }
    }
}
