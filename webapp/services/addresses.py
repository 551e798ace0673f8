"""Bitcoin addresses and countries: the checks behind a miner's username and
country.

A miner's user id is the username their miner sends to the pool, which is
meant to be their payout address. API.md keeps ``user_id`` as any 3–128
characters of ``[A-Za-z0-9._-]``; the register page additionally checks it
with ``bitcoin_address`` and asks for a confirmation before creating an
account whose id is not an address.

Accepted addresses, mainnet and testnet (signet uses testnet addresses):

* segwit (BIP-173 bech32 for witness version 0, BIP-350 bech32m for versions
  1 to 16, e.g. taproot): human-readable part ``bc`` (mainnet) or ``tb``
  (testnet), decoded by the ``bech32m`` package, the reference implementation
  of both specifications (it also refuses a v0 address with a bech32m
  checksum and a v1+ address with a bech32 one);
* base58check (``base58`` package): 21 bytes after the 4-byte double-SHA256
  checksum, the first being the version byte ``0x00`` (mainnet P2PKH, ``1…``),
  ``0x05`` (mainnet P2SH, ``3…``), ``0x6f`` (testnet P2PKH, ``m…``/``n…``) or
  ``0xc4`` (testnet P2SH, ``2…``).

Countries are ISO 3166-1 alpha-2 codes, as ``pycountry`` knows them.
"""
from __future__ import annotations

from dataclasses import dataclass

import base58
import bech32m
import pycountry

from .errors import ValidationError

# hrp → network (BIP-173: "bc" mainnet, "tb" testnet).
SEGWIT_HRPS = {"bc": "mainnet", "tb": "testnet"}
# base58check version byte → (network, kind).
BASE58_VERSIONS = {
    0x00: ("mainnet", "p2pkh"),
    0x05: ("mainnet", "p2sh"),
    0x6F: ("testnet", "p2pkh"),
    0xC4: ("testnet", "p2sh"),
}
_HASH160_LEN = 20  # the payload after the version byte: a HASH160


@dataclass(frozen=True)
class Address:
    """A valid Bitcoin address: ``network`` "mainnet" | "testnet", ``kind``
    "p2pkh" | "p2sh" | "segwit", ``witness_version`` 0–16 for segwit, else
    None."""

    network: str
    kind: str
    witness_version: int | None = None


def bitcoin_address(value: str) -> Address | None:
    """The address ``value`` is (see the module docstring), or None when it
    is not a valid mainnet or testnet Bitcoin address. Never raises."""
    if not isinstance(value, str) or not value.isascii():
        return None
    segwit = _segwit(value)
    return segwit if segwit is not None else _base58check(value)


def is_bitcoin_address(value: str) -> bool:
    """Whether ``value`` is a valid mainnet or testnet Bitcoin address."""
    return bitcoin_address(value) is not None


def _segwit(value: str) -> Address | None:
    hrp = value[: value.rfind("1")].lower() if "1" in value else ""
    network = SEGWIT_HRPS.get(hrp)
    if network is None:
        return None
    try:
        decoded = bech32m.decode(hrp, value)
    except ValueError:  # bech32m.DecodeError: bad checksum, length, version or padding
        return None
    return Address(network, "segwit", decoded.witver)


def _base58check(value: str) -> Address | None:
    try:
        payload = base58.b58decode_check(value)
    except ValueError:  # a character outside the alphabet or a wrong checksum
        return None
    if len(payload) != 1 + _HASH160_LEN or payload[0] not in BASE58_VERSIONS:
        return None
    network, kind = BASE58_VERSIONS[payload[0]]
    return Address(network, kind)


def is_country_code(value: object) -> bool:
    """Whether ``value`` is an ISO 3166-1 alpha-2 code in capitals ("PT");
    "ZZ", "XX" and lower case are not."""
    return (isinstance(value, str) and len(value) == 2 and value.isascii() and value.isupper()
            and pycountry.countries.get(alpha_2=value) is not None)


def check_country_code(value: str | None) -> str | None:
    """``value`` when it is None or an ISO 3166-1 alpha-2 code in capitals
    (``is_country_code``). Raises ValidationError otherwise."""
    if value is not None and not is_country_code(value):
        raise ValidationError("country_code must be an ISO 3166-1 alpha-2 country code in capitals, e.g. PT.")
    return value
