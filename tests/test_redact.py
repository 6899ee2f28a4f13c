from buyer_agent._redact import REDACTED, Secret, redact


def test_redacts_nested_secrets_and_keeps_public_fields() -> None:
    body = {
        "pairingToken": "eyJ.secret",
        "apiKey": "k",
        "skillKeys": ["a"],
        "providerCredentials": {"walrus": {"publisherToken": "x"}},
        "items": [{"private_key": "0xabc", "token": "USDC"}],
    }
    out = redact(body)
    assert out["pairingToken"] == REDACTED
    assert out["apiKey"] == REDACTED
    assert out["skillKeys"] == ["a"]
    assert out["providerCredentials"] == REDACTED
    assert out["items"][0] == {"private_key": REDACTED, "token": "USDC"}


def test_secret_never_prints_itself() -> None:
    s = Secret("0xdeadbeef")
    assert "deadbeef" not in repr(s) and "deadbeef" not in str(s) and "deadbeef" not in f"{s}"
    assert s.reveal() == "0xdeadbeef"
