"""A small standalone Certus-Trust: ``POST /v1/verify-and-permit-upload`` with the embedded policy.

Run it with ``python -m trust_service --help``. It holds its own keys: one trusted public key per
signer (``--signer-key NAME=cosign.pub``) and its proof-signing key (``--key-dir``).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from workers.uploads.trust_policy import TrustPolicy


def create_app(policy: TrustPolicy) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    @app.post("/v1/verify-and-permit-upload")
    def verify_and_permit() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify({"error": {"code": "invalid_json", "message": "send a JSON object"}}), 400
        decision = policy.decide(body)
        scan_id = str(body["scan_id"]) if isinstance(body.get("scan_id"), str) else ""
        tier = str(body["tier"]) if isinstance(body.get("tier"), str) else ""
        return jsonify(decision.response(scan_id, tier)), 200

    return app
