// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// ERC-20 for the fixture chain. One contract covers the token behaviours a keeper meets on
/// mainnet: any decimals, a USDT-style approve that must go through zero, and a fee taken on
/// every transfer (burned), like the deflationary tokens Router02's *SupportingFeeOnTransfer
/// functions exist for.
/// Storage order is fixed on purpose: tests and mirror mode write balances (slot 0) directly.
contract FixtureToken {
    mapping(address => uint256) public balanceOf; // slot 0
    mapping(address => mapping(address => uint256)) public allowance; // slot 1
    uint256 public totalSupply; // slot 2
    string public name; // slot 3
    string public symbol; // slot 4
    uint8 public decimals; // slot 5
    uint16 public transferFeeBps; // slot 5 (packed)
    bool public approveThroughZero; // slot 5 (packed)
    address public owner; // slot 6

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(
        string memory name_,
        string memory symbol_,
        uint8 decimals_,
        uint16 transferFeeBps_,
        bool approveThroughZero_
    ) {
        require(transferFeeBps_ < 10_000, "fee too high");
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
        transferFeeBps = transferFeeBps_;
        approveThroughZero = approveThroughZero_;
        owner = msg.sender;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == owner, "only owner");
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        // USDT: changing a non-zero allowance to another non-zero value is refused.
        require(
            !approveThroughZero || amount == 0 || allowance[msg.sender][spender] == 0,
            "approve from non-zero"
        );
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _transfer(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= amount, "allowance");
            allowance[from][msg.sender] = allowed - amount;
        }
        _transfer(from, to, amount);
        return true;
    }

    function _transfer(address from, address to, uint256 amount) private {
        require(balanceOf[from] >= amount, "balance");
        uint256 fee = (amount * transferFeeBps) / 10_000;
        balanceOf[from] -= amount;
        balanceOf[to] += amount - fee;
        if (fee > 0) {
            totalSupply -= fee;
            emit Transfer(from, address(0), fee);
        }
        emit Transfer(from, to, amount - fee);
    }
}
