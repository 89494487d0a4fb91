"""Launcher: ``python -m trust_service --port 8443 --cert tls.crt --tls-key tls.key --signer-key NAME=cosign.pub``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from werkzeug.serving import run_simple

from trust_service import create_app
from workers.uploads import signing
from workers.uploads.trust_policy import MemoryReplayGuard, RedisReplayGuard, ReplayGuard, TrustPolicy


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="trust_service", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", help="TLS certificate (PEM); without it the service speaks plain HTTP")
    p.add_argument("--tls-key", help="TLS private key (PEM)")
    p.add_argument("--signer-key", action="append", default=[], metavar="NAME=PUBKEY",
                   help="a signer identity and the path of its PEM public key (repeatable)")
    p.add_argument("--basic", default="", help="comma-separated signers allowed for the basic tier")
    p.add_argument("--verified", default="", help="comma-separated signers allowed for the verified tier")
    p.add_argument("--key-dir", required=True, help="folder of the proof-signing key (created when missing)")
    p.add_argument("--max-clock-skew", type=int, default=300)
    p.add_argument("--redis-url", default="", help="remember seen signatures in Redis (default: in memory)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    keys = {}
    for item in args.signer_key:
        name, _, path = item.partition("=")
        keys[name] = signing.load_public_key(Path(path).read_bytes())
    allowed = {"basic": tuple(s for s in args.basic.split(",") if s) or tuple(keys),
               "verified": tuple(s for s in args.verified.split(",") if s) or tuple(keys)}
    replay: ReplayGuard = MemoryReplayGuard()
    if args.redis_url:
        import redis

        replay = RedisReplayGuard(redis.Redis.from_url(args.redis_url))
    proof = signing.PemSigner(signing.load_or_create_pem_key(Path(args.key_dir) / "trust.pem"))
    policy = TrustPolicy(signer_keys=keys, allowed_signers=allowed, proof_signer=proof, replay=replay,
                         max_clock_skew=args.max_clock_skew)
    ssl_context = (args.cert, args.tls_key) if args.cert else None
    run_simple(args.host, args.port, create_app(policy), threaded=True, ssl_context=ssl_context)


if __name__ == "__main__":
    main()
