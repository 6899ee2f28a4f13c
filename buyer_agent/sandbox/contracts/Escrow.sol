// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

interface IERC20Minimal {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @title Order escrow: a buyer locks tokens for one order; the arbiter (the market) or the buyer
///        releases them to the payee, or the arbiter (or the payee) refunds the buyer.
/// @notice One deposit per order key (keccak256 of the order id). States: 0 none, 1 held,
///         2 released, 3 refunded; released and refunded are final.
contract Escrow {
    uint8 public constant NONE = 0;
    uint8 public constant HELD = 1;
    uint8 public constant RELEASED = 2;
    uint8 public constant REFUNDED = 3;

    struct Deposit {
        address buyer;
        address payee;
        address token;
        uint256 amount;
        uint8 state;
    }

    address public immutable arbiter;
    mapping(bytes32 => Deposit) public deposits;

    event Deposited(
        bytes32 indexed orderKey, address indexed buyer, address indexed payee, address token, uint256 amount
    );
    event Released(bytes32 indexed orderKey, address indexed payee, uint256 amount);
    event Refunded(bytes32 indexed orderKey, address indexed buyer, uint256 amount);

    constructor(address arbiter_) {
        require(arbiter_ != address(0), "Escrow: arbiter is the zero address");
        arbiter = arbiter_;
    }

    /// Pulls `amount` of `token` from the caller (after `approve`) and holds it for `orderKey`.
    function deposit(bytes32 orderKey, address payee, address token, uint256 amount) external {
        require(deposits[orderKey].state == NONE, "Escrow: order already has a deposit");
        require(payee != address(0), "Escrow: payee is the zero address");
        require(token.code.length > 0, "Escrow: token is not a contract");
        require(amount > 0, "Escrow: amount is zero");
        // State first, transfer second: a re-entrant call finds the order already taken.
        deposits[orderKey] = Deposit(msg.sender, payee, token, amount, HELD);
        require(
            IERC20Minimal(token).transferFrom(msg.sender, address(this), amount), "Escrow: token transfer failed"
        );
        emit Deposited(orderKey, msg.sender, payee, token, amount);
    }

    /// Pays the held tokens to the payee. Callable by the buyer or the arbiter.
    function release(bytes32 orderKey) external {
        Deposit storage d = deposits[orderKey];
        require(d.state == HELD, "Escrow: deposit is not held");
        require(msg.sender == d.buyer || msg.sender == arbiter, "Escrow: caller may not release");
        d.state = RELEASED;
        require(IERC20Minimal(d.token).transfer(d.payee, d.amount), "Escrow: token transfer failed");
        emit Released(orderKey, d.payee, d.amount);
    }

    /// Returns the held tokens to the buyer. Callable by the arbiter or the payee.
    function refund(bytes32 orderKey) external {
        Deposit storage d = deposits[orderKey];
        require(d.state == HELD, "Escrow: deposit is not held");
        require(msg.sender == arbiter || msg.sender == d.payee, "Escrow: caller may not refund");
        d.state = REFUNDED;
        require(IERC20Minimal(d.token).transfer(d.buyer, d.amount), "Escrow: token transfer failed");
        emit Refunded(orderKey, d.buyer, d.amount);
    }
}
