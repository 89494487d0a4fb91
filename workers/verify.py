"""Verify a scan bundle against the service's public key.

    python -m workers.verify BUNDLE_DIR --key cosign.pub

Exit code 0 when the attestation's signature is valid and every file of the bundle matches its
signed sha256 (none changed, missing or added); 1 otherwise; 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workers.signing import signing_keys
from workers.signing.attestation import ATTESTATION_PATH, verify_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.verify",
                                     description="Verify a Certus Assurance scan bundle's signed attestation.")
    parser.add_argument("bundle", type=Path, help="the bundle folder (holds scan.json and reports/)")
    parser.add_argument("--key", required=True, help="the service's public key (cosign.pub)")
    args = parser.parse_args(argv)
    if not args.bundle.is_dir():
        print(f"FAILED: {args.bundle} is not a folder", file=sys.stderr)
        return 1
    try:
        public_key = signing_keys.load_verification_key(args.key)
    except signing_keys.SigningKeyError as exc:
        print(f"FAILED ({exc.code}): {exc.message}", file=sys.stderr)
        return 1
    result = verify_bundle(args.bundle, public_key)
    if not result.ok:
        print(f"FAILED ({result.code}): {result.message}", file=sys.stderr)
        return 1
    print(f"Verified OK: {args.bundle} ({ATTESTATION_PATH}): {result.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
