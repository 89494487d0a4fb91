"""A Trust that cannot be reached is not a decision: the verification is retried (nothing is
published meanwhile) and only the last attempt denies the upload, failing closed. Real Redis; the
Trust is a fake of our own port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.events import EventLog
from tasks.ids import new_test_id
from tasks.records import ScanRecord
from tasks.settings import Settings
from tasks.store import ScanStore
from tasks.uploads import DENIED, PENDING, UploadStore
from workers.uploads.engine import UploadEngine
from workers.uploads.errors import TransientUploadError
from workers.uploads.signing import ATTESTATION_PATH, PemSigner
from workers.uploads.trust import Decision


class DownTrust:
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.calls = 0

    def verify_and_permit(self, request: dict[str, Any]) -> Decision:
        self.calls += 1
        return Decision(False, self.reason, "Certus-Trust is unreachable (ConnectionError)")


@pytest.fixture()
def pending(tmp_path: Path, redis_client: Any) -> tuple[Settings, str, str]:
    settings = Settings(artifact_root=str(tmp_path / "artifacts"))
    test_id = new_test_id()
    store = ScanStore(redis_client)
    store.create(ScanRecord(test_id=test_id, workspace_id="ws", component_id="c", assessment_id="a",
                            profile="smoke", status="SUCCEEDED"))
    bundle = tmp_path / "artifacts" / test_id
    (bundle / ATTESTATION_PATH).parent.mkdir(parents=True)
    (bundle / "scan.json").write_text("{}")
    (bundle / ATTESTATION_PATH).write_text("{}")
    _, _, request_id = UploadStore(store, EventLog(redis_client)).open_request(test_id, "basic", None)
    return settings, test_id, request_id


@pytest.mark.parametrize("reason", ["trust_unreachable", "trust_timeout", "trust_unavailable"])
def test_an_unreachable_trust_is_retried_then_denied_on_the_last_attempt(pending, redis_client, reason):
    settings, test_id, request_id = pending
    trust = DownTrust(reason)
    engine = UploadEngine(settings, redis_client, trust=trust,
                          signer=PemSigner(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(TransientUploadError) as caught:
        engine.verify_upload(test_id, request_id, last_attempt=False)
    assert caught.value.reason.startswith(reason)
    assert engine.uploads.state(test_id).upload_status == PENDING  # undecided, nothing published
    assert engine.verify_upload(test_id, request_id, last_attempt=True) == []
    state = engine.uploads.state(test_id)
    assert state.upload_status == DENIED and state.upload_reason.startswith(reason)
    assert trust.calls == 2


def test_a_refusal_is_final_at_once(pending, redis_client):
    settings, test_id, request_id = pending
    engine = UploadEngine(settings, redis_client, trust=DownTrust("signer_not_allowed"),
                          signer=PemSigner(ec.generate_private_key(ec.SECP256R1())))
    assert engine.verify_upload(test_id, request_id, last_attempt=False) == []
    assert engine.uploads.state(test_id).upload_status == DENIED
