"""``python -m app.keys create|list|revoke``: manage API keys in the service's Redis.

    python -m app.keys create --role submitter --workspace acme [--workspace beta] [--name ci]
    python -m app.keys list
    python -m app.keys revoke <key id>

The key is printed once by ``create``; only its hash is stored.
"""

from __future__ import annotations

import argparse
import json
import sys

from tasks.api_keys import ROLES, InvalidKeySpec, KeyStore
from tasks.redis_client import connect
from tasks.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.keys")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--workspace", action="append", required=True,
                        help="a workspace the key may use; repeat for several; * for all")
    create.add_argument("--name", default="", help="a label shown by list")
    create.add_argument("--json", action="store_true", help="print the key and its id as JSON")
    sub.add_parser("list", help="list keys (ids, roles, workspaces; never the keys)")
    revoke = sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    store = KeyStore(connect(Settings.from_env().redis_url))
    if args.command == "create":
        try:
            plain, principal = store.create(args.role, args.workspace, name=args.name)
        except InvalidKeySpec as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps({"key": plain, "key_id": principal.key_id, "role": principal.role,
                              "workspaces": sorted(principal.workspaces)}))
        else:
            print(plain)
            print(f"key id {principal.key_id}, role {principal.role}, workspaces "
                  f"{','.join(sorted(principal.workspaces))} (shown once; store it now)", file=sys.stderr)
        return 0
    if args.command == "list":
        for item in store.list():
            print(f"{item['key_id']}  {item['role']:<9}  {','.join(item['workspaces'])}  {item.get('name', '')}")
        return 0
    if not store.revoke(args.key_id):
        print(f"error: no key with id {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
