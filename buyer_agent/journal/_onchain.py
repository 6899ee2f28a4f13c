"""``replay --check-chain``: read an order's payment transactions back from the chain's RPC.

A verified hash chain and a good signature say the agent wrote the journal; only the chain says the
money moved as written. For every moving transaction of the order's ``pay`` events (``transfer``,
``escrow_deposit``) this reads, over plain JSON-RPC:

- EVM: the receipt (mined, status 1), the transaction's sender and the ERC-20 ``Transfer`` log it
  emitted: token contract, sender, recipient, amount;
- Solana: the transaction's token balances before and after: the mint, the owner whose balance
  fell (payer) and the one whose balance rose (payee), by how much;

and compares payer, payee (the escrow contract for escrow rails), token and amount with every place
the journal states them (the ``pay`` request, the payment intent, the payment proof). Each
difference is listed; the node's chain id is checked against the journal's chain first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from buyer_agent._limits import MAX_MARKET_ANSWER_BYTES
from buyer_agent._tls import tls_context
from buyer_agent.rails._evm_abi import transfer_logs

__all__ = ["ChainCheck", "Payment", "check_payments", "payments_of"]

_MOVING = ("transfer", "escrow_deposit")
_TIMEOUT = httpx.Timeout(10.0)


@dataclass(frozen=True, slots=True)
class Payment:
    """One moving transaction and what the journal says it did (``claims``: (where, field, value))."""

    rail: str
    chain: str
    tx_id: str
    purpose: str
    claims: tuple[tuple[str, str, str], ...]


@dataclass(slots=True)
class ChainCheck:
    """The outcome for one order: the transactions read and every difference found."""

    checked: list[dict[str, Any]] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every transaction was read and matches the journal."""
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        """``{"ok", "checked", "mismatches"}``."""
        return {"ok": self.ok, "checked": self.checked, "mismatches": self.mismatches}


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def _claims(event: Mapping[str, Any], request: Mapping[str, Any], escrow: bool) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    seq = event.get("seq")
    amount = request.get("amount")
    base = amount.get("base_units") if isinstance(amount, Mapping) else None
    to = request.get("escrow_address") if escrow else request.get("payee")
    for name, value in (
        ("payer", request.get("payer")),
        ("payee", to),
        ("token", request.get("token")),
        ("amount", base),
    ):
        if value is not None:
            out.append((f"event {seq} (pay request)", name, str(value)))
    return out


def _fact_claims(events: Iterable[Mapping[str, Any]], escrow: bool) -> list[tuple[str, str, str]]:
    """What the payment intent and the payment proof say (they must agree with the chain too)."""
    out: list[tuple[str, str, str]] = []
    for ev in events:
        payload = ev.get("payload")
        if not isinstance(payload, Mapping):
            continue
        for where, facts in (
            ("payment intent", _intent_rail(payload)),
            ("payment proof", payload.get("proof")),
        ):
            if not isinstance(facts, Mapping):
                continue
            label = f"event {ev.get('seq')} ({where})"
            pairs = [("payer", facts.get("payer_address")), ("amount", facts.get("raw_amount"))]
            pairs.append(("token", facts.get("token_address") or facts.get("token_mint")))
            if not escrow:
                pairs.append(("payee", facts.get("payee_address")))
            out.extend((label, name, str(value)) for name, value in pairs if value is not None)
    return out


def _intent_rail(payload: Mapping[str, Any]) -> Any:
    intent = payload.get("intent")
    if not isinstance(intent, Mapping):
        return None
    rail = intent.get("rail")
    return rail if isinstance(rail, Mapping) else None


def payments_of(events: Sequence[Mapping[str, Any]]) -> list[Payment]:
    """The moving transactions of an order's ``pay`` events, with what the journal claims for each."""
    found: list[Payment] = []
    for ev in events:
        payload = ev.get("payload")
        if ev.get("trigger") != "pay" or not isinstance(payload, Mapping):
            continue
        request = payload.get("request")
        if not isinstance(request, Mapping):
            continue
        escrow = "escrow" in str(request.get("rail_type") or "")
        claims = [*_claims(ev, request, escrow), *_fact_claims(events, escrow)]
        for tx in payload.get("txs") or ():
            if not isinstance(tx, Mapping) or tx.get("purpose") not in _MOVING:
                continue
            found.append(
                Payment(
                    rail=str(payload.get("rail") or ""),
                    chain=str(tx.get("chain") or request.get("chain") or ""),
                    tx_id=str(tx.get("tx_id")),
                    purpose=str(tx.get("purpose")),
                    claims=tuple(claims),
                )
            )
    return found


class _Rpc:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.Client(verify=tls_context(), timeout=_TIMEOUT)
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        resp = self._client.post(
            self.url, json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        )
        if len(resp.content) > MAX_MARKET_ANSWER_BYTES:
            raise ValueError(f"the RPC answer to {method} is larger than the limit")
        body = resp.json()
        if not isinstance(body, Mapping):
            raise ValueError(f"the RPC answered {method} with no JSON object")
        if body.get("error") is not None:
            raise ValueError(f"the RPC refused {method}: {body['error']}")
        return body.get("result")

    def close(self) -> None:
        self._client.close()


def _same(a: str | None, b: str | None) -> bool:
    # EVM hex addresses compare without case (checksums); base58 (Solana) is case-sensitive.
    if a is None or b is None:
        return False
    return a.lower() == b.lower() if a.startswith("0x") else a == b


def _evm_facts(rpc: _Rpc, chain: str, tx_id: str) -> tuple[dict[str, str], list[str]]:
    problems: list[str] = []
    want = chain.removeprefix("eip155:")
    got = int(str(rpc.call("eth_chainId", [])), 16)
    if want.isdigit() and int(want) != got:
        return {}, [f"{tx_id}: the RPC serves chain eip155:{got}, the journal says {chain}"]
    receipt = rpc.call("eth_getTransactionReceipt", [tx_id])
    if not isinstance(receipt, Mapping):
        return {}, [f"{tx_id}: no such transaction on {chain} (no receipt)"]
    if int(str(receipt.get("status", "0x0")), 16) != 1:
        problems.append(f"{tx_id}: the transaction reverted")
    sender = _s(receipt.get("from"))
    logs = [log for log in transfer_logs(receipt.get("logs") or []) if _same(log.sender, sender)]
    if not logs:
        return {"payer": sender or ""}, [
            *problems,
            f"{tx_id}: no ERC-20 Transfer from {sender} in its receipt",
        ]
    log = logs[0]
    total = sum(x.amount for x in logs if x.token == log.token and x.to == log.to)
    return {"payer": sender or "", "payee": log.to, "token": log.token, "amount": str(total)}, problems


def _solana_facts(rpc: _Rpc, chain: str, tx_id: str) -> tuple[dict[str, str], list[str]]:
    genesis = str(rpc.call("getGenesisHash", []))
    want = chain.removeprefix("solana:")
    if want and not genesis.startswith(want):
        return {}, [f"{tx_id}: the RPC serves solana:{genesis[:32]}, the journal says {chain}"]
    found = rpc.call(
        "getTransaction",
        [tx_id, {"encoding": "json", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}],
    )
    meta = found.get("meta") if isinstance(found, Mapping) else None
    if not isinstance(meta, Mapping):
        return {}, [f"{tx_id}: no such transaction on {chain}"]
    problems = [] if meta.get("err") is None else [f"{tx_id}: the transaction failed: {meta['err']}"]
    change: dict[tuple[str, str], int] = {}
    for sign, key in ((-1, "preTokenBalances"), (1, "postTokenBalances")):
        for b in meta.get(key) or ():
            owner, mint = b.get("owner"), b.get("mint")
            if owner is None or mint is None:
                continue
            amount = int((b.get("uiTokenAmount") or {}).get("amount") or 0)
            change[(str(mint), str(owner))] = change.get((str(mint), str(owner)), 0) + sign * amount
    rose = [(k, v) for k, v in change.items() if v > 0]
    fell = [(k, v) for k, v in change.items() if v < 0]
    if not rose or not fell:
        return {}, [*problems, f"{tx_id}: no token balance moved in the transaction"]
    (mint, payee), amount = rose[0]
    payer = next((owner for (m, owner), _ in fell if m == mint), "")
    return {"payer": payer, "payee": payee, "token": mint, "amount": str(amount)}, problems


def check_payments(
    events: Sequence[Mapping[str, Any]], *, evm_rpc: str | None, solana_rpc: str | None
) -> ChainCheck:
    """Read every moving payment transaction back and compare it with the journal.

    Args:
        events: The order's (verified) events.
        evm_rpc: The EVM JSON-RPC URL (``--evm-rpc`` / ``$BUYER_AGENT_EVM_RPC``).
        solana_rpc: The Solana JSON-RPC URL (``--solana-rpc`` / ``$BUYER_AGENT_SOLANA_RPC``).
    """
    out = ChainCheck()
    rpcs: dict[str, _Rpc] = {}
    try:
        for pay in payments_of(events):
            solana = pay.chain.startswith("solana:")
            url = solana_rpc if solana else evm_rpc
            if not url:
                flag, env = ("solana", "SOLANA") if solana else ("evm", "EVM")
                out.mismatches.append(
                    f"{pay.tx_id}: no RPC for {pay.chain} (give --{flag}-rpc or set $BUYER_AGENT_{env}_RPC)"
                )
                continue
            rpc = rpcs.setdefault(url, _Rpc(url))
            try:
                facts, problems = (_solana_facts if solana else _evm_facts)(rpc, pay.chain, pay.tx_id)
            except (httpx.HTTPError, ValueError, TypeError, AttributeError) as exc:
                out.mismatches.append(f"{pay.tx_id}: cannot read it from {url}: {exc}")
                continue
            out.mismatches.extend(problems)
            for where, name, value in pay.claims:
                chain_value = facts.get(name)
                if chain_value is not None and not _same(value, chain_value):
                    out.mismatches.append(
                        f"{pay.tx_id}: {name} on chain is {chain_value}, {where} says {value}"
                    )
            out.checked.append(
                {"tx_id": pay.tx_id, "chain": pay.chain, "purpose": pay.purpose, "on_chain": facts}
            )
    finally:
        for rpc in rpcs.values():
            rpc.close()
    return out
