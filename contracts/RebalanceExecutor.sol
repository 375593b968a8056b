// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface IERC20Like {
    function balanceOf(address) external view returns (uint256);
    function transfer(address, uint256) external returns (bool);
    function transferFrom(address, address, uint256) external returns (bool);
}

interface IPairLike {
    function factory() external view returns (address);
    function token0() external view returns (address);
    function token1() external view returns (address);
    function getReserves() external view returns (uint112, uint112, uint32);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
    function burn(address to) external returns (uint256 amount0, uint256 amount1);
    function mint(address to) external returns (uint256 liquidity);
}

interface IFactoryLike {
    function getPair(address, address) external view returns (address);
}

/// Runs a whole rebalance in one transaction, straight against Uniswap V2 pairs: it all lands at
/// the quoted prices or none of it does.
///
/// - Only the owner can call it. It talks only to pairs of the factories fixed at deployment
///   (checked with factory.getPair) and to their two tokens: no arbitrary external calls.
/// - Vault mode: the contract holds the portfolio (the owner deposits by transfer and withdraws
///   with `withdraw`). Wallet mode: `pulls` takes exact amounts from the owner (who approved
///   them) first, and everything left at the end goes back to the owner.
/// - Every step checks its own minimum; `minBalances` checks the final holdings; a deadline
///   bounds when it may run. Swaps pay out what the pair's balances allow, so fee-on-transfer
///   tokens are handled by balance deltas.
contract RebalanceExecutor {
    uint8 internal constant SWAP = 0;
    uint8 internal constant REMOVE_LIQUIDITY = 1;
    uint8 internal constant ADD_LIQUIDITY = 2;

    struct Step {
        uint8 kind;
        address pair;
        address tokenIn; // SWAP: the token sold; ADD/REMOVE: unused
        uint256 amount; // SWAP: input (0 = all the previous step delivered); REMOVE: LP; ADD: token0
        uint256 amount1; // ADD: token1 amount; otherwise unused
        uint256 min0; // SWAP: minimum output; REMOVE: minimum token0; ADD: minimum LP minted
        uint256 min1; // REMOVE: minimum token1; otherwise unused
    }

    struct Transfer {
        address token;
        uint256 amount;
    }

    address public immutable owner;
    mapping(address => bool) public factories;

    event Executed(uint256 steps, uint256 lastOutput);

    error NotOwner();
    error Expired();
    error UnknownPair(address pair);
    error BelowMinimum(uint256 step, uint256 got, uint256 minimum);
    error FinalBalance(address token, uint256 balance, uint256 minimum);
    error TransferFailed(address token);

    constructor(address[] memory allowedFactories) {
        owner = msg.sender;
        for (uint256 i = 0; i < allowedFactories.length; i++) {
            factories[allowedFactories[i]] = true;
        }
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    function execute(
        Step[] calldata steps,
        Transfer[] calldata pulls,
        Transfer[] calldata minBalances,
        address[] calldata returnTokens,
        uint256 deadline
    ) external onlyOwner returns (uint256 lastOutput) {
        if (block.timestamp > deadline) revert Expired();
        for (uint256 i = 0; i < pulls.length; i++) {
            _safeTransferFrom(pulls[i].token, owner, address(this), pulls[i].amount);
        }
        for (uint256 i = 0; i < steps.length; i++) {
            Step calldata step = steps[i];
            (address token0, address token1) = _checkedPair(step.pair);
            if (step.kind == SWAP) {
                lastOutput = _swap(i, step, token0, token1, step.amount == 0 ? lastOutput : step.amount);
            } else if (step.kind == REMOVE_LIQUIDITY) {
                _safeTransfer(step.pair, step.pair, step.amount);
                (uint256 amount0, uint256 amount1) = IPairLike(step.pair).burn(address(this));
                if (amount0 < step.min0) revert BelowMinimum(i, amount0, step.min0);
                if (amount1 < step.min1) revert BelowMinimum(i, amount1, step.min1);
            } else {
                _safeTransfer(token0, step.pair, step.amount);
                _safeTransfer(token1, step.pair, step.amount1);
                lastOutput = IPairLike(step.pair).mint(address(this));
                if (lastOutput < step.min0) revert BelowMinimum(i, lastOutput, step.min0);
            }
        }
        for (uint256 i = 0; i < minBalances.length; i++) {
            uint256 held = IERC20Like(minBalances[i].token).balanceOf(address(this));
            if (held < minBalances[i].amount) revert FinalBalance(minBalances[i].token, held, minBalances[i].amount);
        }
        // Wallet mode: hand everything touched back to the owner.
        for (uint256 i = 0; i < returnTokens.length; i++) {
            uint256 held = IERC20Like(returnTokens[i]).balanceOf(address(this));
            if (held > 0) _safeTransfer(returnTokens[i], owner, held);
        }
        emit Executed(steps.length, lastOutput);
    }

    function withdraw(address token, uint256 amount, address to) external onlyOwner {
        _safeTransfer(token, to, amount);
    }

    function withdrawEth(uint256 amount, address payable to) external onlyOwner {
        (bool ok,) = to.call{value: amount}("");
        require(ok, "ETH transfer failed");
    }

    function _swap(uint256 i, Step calldata step, address token0, address token1, uint256 amountIn)
        private
        returns (uint256 out)
    {
        bool zeroForOne = step.tokenIn == token0;
        require(zeroForOne || step.tokenIn == token1, "token not in pair");
        address tokenOut = zeroForOne ? token1 : token0;
        _safeTransfer(step.tokenIn, step.pair, amountIn);
        (uint112 reserve0, uint112 reserve1,) = IPairLike(step.pair).getReserves();
        (uint256 reserveIn, uint256 reserveOut) = zeroForOne ? (reserve0, reserve1) : (reserve1, reserve0);
        // What actually arrived: a fee-on-transfer token delivers less than was sent.
        uint256 arrived = IERC20Like(step.tokenIn).balanceOf(step.pair) - reserveIn;
        uint256 withFee = arrived * 997;
        uint256 amountOut = (withFee * reserveOut) / (reserveIn * 1000 + withFee);
        uint256 before = IERC20Like(tokenOut).balanceOf(address(this));
        IPairLike(step.pair).swap(zeroForOne ? 0 : amountOut, zeroForOne ? amountOut : 0, address(this), "");
        out = IERC20Like(tokenOut).balanceOf(address(this)) - before;
        if (out < step.min0) revert BelowMinimum(i, out, step.min0);
    }

    function _checkedPair(address pair) private view returns (address token0, address token1) {
        address factory = IPairLike(pair).factory();
        token0 = IPairLike(pair).token0();
        token1 = IPairLike(pair).token1();
        if (!factories[factory] || IFactoryLike(factory).getPair(token0, token1) != pair) revert UnknownPair(pair);
    }

    function _safeTransfer(address token, address to, uint256 amount) private {
        (bool ok, bytes memory data) = token.call(abi.encodeWithSelector(IERC20Like.transfer.selector, to, amount));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed(token);
    }

    function _safeTransferFrom(address token, address from, address to, uint256 amount) private {
        (bool ok, bytes memory data) =
            token.call(abi.encodeWithSelector(IERC20Like.transferFrom.selector, from, to, amount));
        if (!ok || (data.length != 0 && !abi.decode(data, (bool)))) revert TransferFailed(token);
    }

    receive() external payable {}
}
