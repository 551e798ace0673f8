"""A miner's username as a Bitcoin address and the country as ISO 3166-1
alpha-2 (services/addresses.py): the register page warns before accepting a
user id that is not an address; every route refuses unknown countries."""
from __future__ import annotations

import json

import pytest

from webapp.services import addresses, demo

# BIP-173 / BIP-350 test vectors and the well-known base58check addresses.
VALID = {
    "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4": ("mainnet", "segwit", 0),
    "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7": ("testnet", "segwit", 0),
    "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y": ("mainnet", "segwit", 1),
    "BC1SW50QGDZ25J": ("mainnet", "segwit", 16),
    "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs": ("mainnet", "segwit", 2),
    "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c": ("testnet", "segwit", 1),
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0": ("mainnet", "segwit", 1),
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa": ("mainnet", "p2pkh", None),
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy": ("mainnet", "p2sh", None),
    "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn": ("testnet", "p2pkh", None),
    "2MzQwSSnBHWHqSAqtTVQ6v47XtaisrJa1Vc": ("testnet", "p2sh", None),
}
INVALID = [
    "tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",  # unknown hrp
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",  # v1 with a bech32 checksum (BIP-350)
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",  # v16 with a bech32 checksum
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",  # v0 with a bech32m checksum
    "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",  # v0 with a bech32m checksum
    "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",  # regtest
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",  # base58check checksum broken
    "11111111111111111111111111111111",  # base58 without a valid checksum
    "bc1qalice0001", "alice.worker", "satoshi", "bc1", "",
]
ADDRESS = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
NOT_AN_ADDRESS = "alice.rig01"


@pytest.mark.parametrize(("value", "expected"), VALID.items())
def test_valid_addresses(value, expected):
    address = addresses.bitcoin_address(value)
    assert address is not None and (address.network, address.kind, address.witness_version) == expected
    assert addresses.is_bitcoin_address(value)


@pytest.mark.parametrize("value", INVALID)
def test_invalid_addresses(value):
    assert addresses.bitcoin_address(value) is None


def test_every_demo_miner_has_a_real_address():
    miners = json.loads(demo.MINERS_FILE.read_text())
    assert miners and all(addresses.is_bitcoin_address(m["user_id"]) for m in miners)


@pytest.mark.parametrize(("value", "ok"), [("PT", True), ("GB", True), ("US", True), ("ZZ", False), ("XX", False),
                                           ("pt", False), ("P", False), ("PRT", False), (None, False), ("ÄÖ", False)])
def test_country_codes_are_iso_3166_alpha_2(value, ok):
    assert addresses.is_country_code(value) is ok


# ---- the register page ----------------------------------------------------------------------


def _register(client, auth, user_id, **extra):
    data = {"user_id": user_id, "password": "longenough", "csrf_token": auth.csrf_token("/register"), **extra}
    return client.post("/register", data=data)


def test_register_page_accepts_an_address_at_once(client, auth):
    resp = _register(client, auth, ADDRESS, display_name="Taproot")
    assert resp.status_code == 302
    assert client.get("/api/me").get_json()["user_id"] == ADDRESS


def test_register_page_warns_before_accepting_a_non_address(client, auth):
    warned = _register(client, auth, NOT_AN_ADDRESS, display_name="Rig")
    assert warned.status_code == 400
    page = warned.get_data(as_text=True)
    assert "not a Bitcoin address" in page and 'name="not_an_address"' in page
    assert f'value="{NOT_AN_ADDRESS}"' in page  # the form keeps what was typed
    assert client.get("/api/me").status_code == 401  # nothing was created
    confirmed = _register(client, auth, NOT_AN_ADDRESS, display_name="Rig", not_an_address="1")
    assert confirmed.status_code == 302
    assert client.get("/api/me").get_json()["user_id"] == NOT_AN_ADDRESS


def test_register_page_shows_other_errors_before_the_address_warning(client, auth):
    resp = _register(client, auth, NOT_AN_ADDRESS, password="short")
    assert resp.status_code == 400 and "not a Bitcoin address" not in resp.get_data(as_text=True)


def test_register_api_keeps_accepting_any_valid_user_id(client):
    resp = client.post("/api/auth/register", json={"user_id": NOT_AN_ADDRESS, "password": "longenough"})
    assert resp.status_code == 201 and resp.get_json()["user"]["user_id"] == NOT_AN_ADDRESS


# ---- countries on every route ---------------------------------------------------------------


@pytest.mark.parametrize("code", ["ZZ", "XX", "AA", "QM"])
def test_register_api_refuses_unknown_countries(client, code):
    resp = client.post("/api/auth/register", json={"user_id": ADDRESS, "password": "longenough",
                                                   "country_code": code})
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "validation_error" and "ISO 3166-1" in error["message"]


def test_register_api_accepts_known_countries(client):
    resp = client.post("/api/auth/register", json={"user_id": ADDRESS, "password": "longenough",
                                                   "country_code": "NL"})
    assert resp.status_code == 201 and resp.get_json()["user"]["country_code"] == "NL"


def test_register_page_refuses_unknown_countries_and_upper_cases_known_ones(client, auth):
    refused = _register(client, auth, ADDRESS, country_code="zz")
    assert refused.status_code == 400 and "ISO 3166-1" in refused.get_data(as_text=True)
    accepted = _register(client, auth, ADDRESS, country_code="pt")
    assert accepted.status_code == 302
    assert client.get("/api/me").get_json()["country_code"] == "PT"


def test_cli_refuses_unknown_countries(runner):
    result = runner.invoke(args=["users", "create", ADDRESS, "--password", "longenough", "--country", "XX"])
    assert result.exit_code != 0 and "ISO 3166-1" in result.output
