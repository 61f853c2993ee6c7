"""The audit's IP hash (issue 8, "Why" 7; contract 5): keyed, not forgeable, not reversible.

Which address is hashed (the last ``X-Forwarded-For`` entry, the one the platform's front end
appends) is checked through the real entrypoint in ``test_entrypoints.py``
(``test_the_audit_hashes_the_address_the_platform_appended``); here, how it is hashed.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from common.settings import SettingsError, load_settings
from common.vocab import Fn, Outcome
from recording.recorder import CallRecord, Recorder, Switches
from usecases.context import client_address

IP = "198.51.100.7"
SALT = "s3cret-salt-of-32-characters-xx"


def _recorder(salt: str) -> Recorder:
    return Recorder(load_settings({"EXTERNAL_DATA_HASH_SALT": salt}), rng=lambda n: 0)


def test_the_hash_is_hmac_sha256_under_the_salt() -> None:
    expected = hmac.new(SALT.encode(), IP.encode(), hashlib.sha256).hexdigest()[:32]
    assert _recorder(SALT).hash(IP) == expected


def test_the_hash_changes_with_the_salt() -> None:
    assert _recorder(SALT).hash(IP) != _recorder(SALT + "x").hash(IP)
    assert _recorder(SALT).hash(IP) != _recorder("external-data").hash(IP)


@pytest.mark.parametrize(
    "unkeyed",
    [IP, f"{SALT}:{IP}", f"{SALT}{IP}", f"{IP}:{SALT}", f"{IP}{SALT}"],
    ids=["sha256(ip)", "sha256(salt:ip)", "sha256(salt+ip)", "sha256(ip:salt)", "sha256(ip+salt)"],
)
def test_the_hash_is_not_a_plain_digest_anyone_could_recompute(unkeyed: str) -> None:
    """A plain digest over 2^32 IPv4 addresses is a lookup table away from the address."""
    digest = hashlib.sha256(unkeyed.encode()).hexdigest()
    got = _recorder(SALT).hash(IP)
    assert got is not None and got not in digest and digest[:32] != got


def test_the_audit_entry_stores_the_keyed_hash_and_never_the_address() -> None:
    rec = CallRecord(
        fn=Fn.ENRICH,
        at=datetime(2026, 11, 26, 10, tzinfo=UTC),
        outcome=Outcome.UNAUTHENTICATED,
        duration_ms=1.0,
        ip=IP,
        user_agent="agent/1.0",
        reason="invalid ID token",
    )
    recorder = _recorder(SALT)
    writes = recorder.writes(rec, Switches())
    audits = [w.data for w in writes if w.path.startswith("external_data_security_audit/")]
    assert len(audits) == 1
    assert audits[0]["ipHash"] == recorder.hash(IP)
    assert IP not in repr([w.data for w in writes])


def test_outside_the_emulator_the_functions_refuse_to_start_without_a_salt() -> None:
    for env in ({}, {"EXTERNAL_DATA_HASH_SALT": "external-data"}):
        with pytest.raises(SettingsError, match="EXTERNAL_DATA_HASH_SALT"):
            load_settings(env, emulator=False)
    with pytest.raises(SettingsError, match="EXTERNAL_DATA_HASH_SALT"):
        load_settings({"EXTERNAL_DATA_HASH_SALT": "short"}, emulator=False)
    assert load_settings({"EXTERNAL_DATA_HASH_SALT": SALT}, emulator=False).hash_salt == SALT


@pytest.mark.parametrize(
    ("forwarded", "peer", "seen"),
    [
        ("203.0.113.1, 198.51.100.7", "10.0.0.1", "198.51.100.7"),
        ("198.51.100.7", "10.0.0.1", "198.51.100.7"),
        (" 2001:db8::1 ", None, "2001:db8::1"),
        ("203.0.113.1, ", "10.0.0.1", "10.0.0.1"),
        ("203.0.113.1,,", None, None),
        (None, "10.0.0.1", "10.0.0.1"),
    ],
)
def test_the_address_is_the_last_forwarded_entry_never_a_client_written_one(
    forwarded: str | None, peer: str | None, seen: str | None
) -> None:
    # Contract 5: the last X-Forwarded-For entry, "never a client-supplied entry": a blank last
    # entry used to fall back to the one before it, which the client wrote.
    assert client_address(forwarded, peer) == seen
