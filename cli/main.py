"""``certus-assurance`` — submit, watch and gate on security scans from a terminal or a CI job.

Exit codes (stable; CI gates rely on them):

  0  success: the scan SUCCEEDED and its policy passed (or the command did what it was asked)
  1  the scan SUCCEEDED but its policy failed (findings over the manifest's thresholds)
  2  usage error: bad flags, an unreadable or invalid JSON file, a bad config file
  3  the scan ended FAILED
  4  the scan ended CANCELLED
  5  the API refused the request (a 4xx error envelope: validation, not found, conflict, auth)
  6  the service is unreachable or answered 5xx (try again later)
  7  verification failed (verify) or the upload ended denied / upload_failed (upload)
130  interrupted (Ctrl-C); the scan itself keeps running — `certus-assurance cancel ID` stops it
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, TextIO, cast
from urllib.parse import quote

from cli import config as cfg
from cli.client import TERMINAL, ApiError, Client, CliError, scan_path
from cli.progress import OWN_SEQUENCES, Progress, format_counts, format_diff
from cli.textsafe import GuardedStream, visible
from cli.verify import VerifyError, verify_bundle

EXIT_OK, EXIT_POLICY, EXIT_USAGE, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 2, 3, 4
EXIT_API, EXIT_UNAVAILABLE, EXIT_VERIFY = 5, 6, 7
UPLOAD_FINAL = ("uploaded", "denied", "upload_failed")
# A request field of a source kind, as --source-field names it (the service checks the rest).
SOURCE_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")

SCAN_FLAGS = {
    # flag -> request field
    "workspace": "workspace_id", "component": "component_id", "assessment": "assessment_id",
    "source_type": "source_type", "git_url": "git_url", "branch": "branch", "commit": "commit",
    "directory_path": "directory_path", "archive_path": "archive_path", "profile": "profile",
    "manifest_path": "manifest_path", "manifest_uri": "manifest_uri",
    "manifest_signature_uri": "manifest_signature_uri", "requested_by": "requested_by",
}


def exit_code_for(record: dict[str, Any], *, ignore_policy: bool = False) -> int:
    status = record.get("status")
    if status == "FAILED":
        return EXIT_FAILED
    if status == "CANCELLED":
        return EXIT_CANCELLED
    policy = record.get("policy")
    if status == "SUCCEEDED" and isinstance(policy, dict) and policy.get("passed") is False and not ignore_policy:
        return EXIT_POLICY
    return EXIT_OK


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def _read_json_file(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    except ValueError as exc:
        raise CliError(f"{what} {path} is not valid JSON: {exc}", EXIT_USAGE) from exc


# -- scan -------------------------------------------------------------------------------------
def build_payload(args: argparse.Namespace) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if args.file:
        loaded = _read_json_file(args.file, "scan file")
        if not isinstance(loaded, dict):
            raise CliError(f"scan file {args.file} must hold a JSON object", EXIT_USAGE)
        payload.update(loaded)
    for flag, field in SCAN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            payload[field] = value
    for item in args.source_field or []:
        name, sep, value = item.partition("=")
        if not sep or not SOURCE_FIELD.match(name):
            raise CliError(f"--source-field takes NAME=VALUE, not {visible(item)!r}", EXIT_USAGE)
        payload[name] = value
    if args.manifest:
        manifest = _read_json_file(args.manifest, "manifest")
        if not isinstance(manifest, dict):
            raise CliError(f"manifest {args.manifest} must hold a JSON object", EXIT_USAGE)
        payload["manifest"] = manifest
    missing = [f for f in ("workspace_id", "component_id", "assessment_id") if not payload.get(f)]
    if missing:
        flags = ", ".join("--" + next(k for k, v in SCAN_FLAGS.items() if v == f).replace("_", "-") for f in missing)
        raise CliError(f"missing {flags} (or give them in --file)", EXIT_USAGE)
    return payload


def follow_scan(client: Client, test_id: str, args: argparse.Namespace, after: str = "0-0") -> int:
    progress = Progress(show_logs=not args.quiet, as_json=args.json)
    for event in client.events(test_id, after, follow=True, transport=args.transport):
        progress.event(event)
    record = client.get_json(scan_path(test_id))
    code = exit_code_for(record, ignore_policy=getattr(args, "ignore_policy", False))
    if args.json:
        summary = record.get("summary") if isinstance(record.get("summary"), dict) else {}
        print(json.dumps({"type": "result", "test_id": test_id, "status": record.get("status"),
                          "policy": record.get("policy"), "errors": record.get("errors"),
                          "baseline": summary.get("baseline"), "diff": summary.get("diff"), "exit_code": code}))
    else:
        print_verdict(record, code)
    return code


def diff_line(record: dict[str, Any]) -> str | None:
    """The scan's comparison with its baseline on one line, when its summary carries one."""
    summary = record.get("summary")
    return format_diff(summary.get("diff"), summary.get("baseline")) if isinstance(summary, dict) else None


def print_verdict(record: dict[str, Any], code: int) -> None:
    line = diff_line(record)
    if line:
        print(line)
    policy = record.get("policy")
    if isinstance(policy, dict):
        verdict = "passed" if policy.get("passed") else "FAILED"
        print(f"policy {verdict}; thresholds {json.dumps(policy.get('thresholds') or {})}")
        for violation in policy.get("violations") or []:
            print(f"  ✗ {visible(violation.get('message'))}")
    for warning in record.get("warnings") or []:
        print(f"warning {visible(warning.get('code'))}: {visible(warning.get('message'))}")
    for error in record.get("errors") or []:
        print(f"error {visible(error.get('code'))}: {visible(error.get('message'))}")
    print(f"{visible(record.get('test_id'))}: {visible(record.get('status'))} (exit {code})")


def cmd_scan(client: Client, args: argparse.Namespace) -> int:
    payload = build_payload(args)
    created = client.post_json("/v1/security-scans", payload)
    test_id = created["test_id"]
    if not args.follow:
        if args.json:
            _print_json(created)
        else:
            shown = visible(test_id)
            print(f"{shown} {visible(created.get('status'))} profile={visible(created.get('profile'))}")
            print(f"  follow:  certus-assurance logs {shown} --follow")
            print(f"  status:  certus-assurance status {shown}")
        return EXIT_OK
    if not args.json:
        print(f"submitted {visible(test_id)} (profile {visible(created.get('profile'))}); following the live log")
    return follow_scan(client, test_id, args)


# -- status / list ----------------------------------------------------------------------------
def _duration(phase: dict[str, Any]) -> str:
    value = phase.get("duration_s")
    return f"{value:.1f}s" if isinstance(value, int | float) else "…"


def print_record(record: dict[str, Any]) -> None:
    print(f"{visible(record.get('test_id'))}  {visible(record.get('status'))}")
    rows = [("workspace", record.get("workspace_id")), ("component", record.get("component_id")),
            ("assessment", record.get("assessment_id")), ("profile", record.get("profile")),
            ("source", record.get("git_url") or record.get("directory_path") or record.get("archive_path")),
            ("branch", record.get("branch")), ("commit", record.get("resolved_commit") or record.get("commit")),
            *_source_fields(record),
            ("created", record.get("created_at")), ("started", record.get("started_at")),
            ("completed", record.get("completed_at")), ("manifest", record.get("manifest_digest")),
            ("upload", record.get("upload_status"))]
    for name, value in rows:
        if value:
            print(f"  {visible(name) + ' ':<11}{visible(value)}")
    phases = record.get("phases") or []
    if phases:
        print("  phases:    " + ", ".join(f"{visible(p.get('name'))} {visible(p.get('status'))} {_duration(p)}"
                                       for p in phases))
    summary = record.get("summary")
    if isinstance(summary, dict):
        print("  findings:  " + format_counts(summary.get("by_severity")))
        for tool, counts in sorted((summary.get("by_tool") or {}).items()):
            print(f"    {visible(tool):<18}{format_counts(counts)}")
        line = diff_line(record)
        if line:
            print(f"  baseline:  {line}")
    policy = record.get("policy")
    if isinstance(policy, dict):
        print(f"  policy:    {'passed' if policy.get('passed') else 'FAILED'}")
        for violation in policy.get("violations") or []:
            print(f"    ✗ {visible(violation.get('message'))}")
    for kind in ("errors", "warnings"):
        for item in record.get(kind) or []:
            print(f"  {kind[:-1]}:    {visible(item.get('code'))}: {visible(item.get('message'))}")


def _source_fields(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """The fields of a source kind the contract does not name (``source_fields``), one row each."""
    found = record.get("source_fields")
    return [(str(name), value) for name, value in found.items()] if isinstance(found, dict) else []


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    record = client.get_json(scan_path(args.test_id))
    while args.wait and record.get("status") not in TERMINAL:
        time.sleep(1)
        record = client.get_json(scan_path(args.test_id))
    if args.json:
        _print_json(record)
    else:
        print_record(record)
    return exit_code_for(record) if args.wait else EXIT_OK


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    params = {"workspace_id": args.workspace, "component_id": args.component, "status": args.status,
              "limit": args.limit, "cursor": args.cursor}
    page = client.get_json("/v1/security-scans", **params)
    items = list(page.get("items", []))
    while args.all and page.get("next_cursor"):
        page = client.get_json("/v1/security-scans", **{**params, "cursor": page["next_cursor"]})
        items.extend(page.get("items", []))
    if args.json:
        _print_json({"items": items, "next_cursor": None if args.all else page.get("next_cursor")})
        return EXIT_OK
    print(f"{'TEST ID':<18}{'STATUS':<11}{'WORKSPACE/COMPONENT':<32}{'PROFILE':<10}{'FINDINGS':<28}CREATED")
    for item in items:
        summary = item.get("summary") or {}
        where = f"{visible(item.get('workspace_id'))}/{visible(item.get('component_id'))}"
        print(f"{visible(item.get('test_id', '')):<18}{visible(item.get('status', '')):<11}{where:<32}"
              f"{visible(item.get('profile', '')):<10}"
              f"{format_counts(summary.get('by_severity')) if summary else '-':<28}"
              f"{visible(item.get('created_at', ''))}")
    if page.get("next_cursor") and not args.all:
        print(f"(more: --cursor {visible(page['next_cursor'])} or --all)")
    return EXIT_OK


# -- logs / cancel ----------------------------------------------------------------------------
def cmd_logs(client: Client, args: argparse.Namespace) -> int:
    client.get_json(scan_path(args.test_id))  # an unknown id fails here with the API's envelope
    if args.follow:
        return follow_scan(client, args.test_id, args, after=args.after)
    progress = Progress(show_logs=not args.quiet, as_json=args.json)
    last = args.after
    for event in client.events(args.test_id, args.after, follow=False):
        progress.event(event)
        last = event["id"]
    if not args.json:
        print(f"(resume with: certus-assurance logs {visible(args.test_id)} --after {visible(last)})",
              file=sys.stderr)
    return EXIT_OK


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    result = client.post_json(scan_path(args.test_id, "/cancel"))
    if args.json:
        _print_json(result)
    elif result.get("status") == "CANCELLED":
        print(f"{visible(args.test_id)} cancelled")
    else:
        print(f"{visible(args.test_id)} cancel requested; the worker stops it shortly")
    return EXIT_OK


# -- findings ---------------------------------------------------------------------------------
FINDING_STATES = ("open", "false_positive", "accepted_risk", "fixed")
TRIAGE_STATES = ("open", "false_positive", "accepted_risk")


def finding_path(finding_id: int, suffix: str = "") -> str:
    return f"/v1/findings/{finding_id}{suffix}"


def _listed(values: list[str] | None) -> str | None:
    """Repeated and comma-separated flag values as the API's comma-separated list."""
    names = [part.strip() for value in values or [] for part in value.split(",") if part.strip()]
    return ",".join(dict.fromkeys(names)) or None


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _state_of(finding: dict[str, Any]) -> str:
    """The state a finding counts as, saying so when a suppression has lapsed."""
    effective = visible(finding.get("effective_state") or finding.get("state") or "")
    return f"{effective} (lapsed {visible(finding.get('state'))})" if finding.get("expired") else effective


def _where(path: Any, line: Any) -> str:
    return visible(path or "-") + (f":{visible(line)}" if line is not None else "")


def _rule_of(item: dict[str, Any]) -> str:
    sources = item.get("sources")
    count = len(sources) if isinstance(sources, list) else 0
    more = f" +{count - 1}" if count > 1 else ""
    return f"{visible(item.get('tool', ''))}:{visible(item.get('rule_id', ''))}{more}"


def cmd_findings(client: Client, args: argparse.Namespace) -> int:
    params = {"workspace_id": args.workspace, "component_id": args.component, "state": _listed(args.state),
              "severity": _listed(args.severity), "tool": args.tool, "rule": args.rule, "path": args.path,
              "new_since": args.new_since, "q": args.search, "limit": args.limit, "cursor": args.cursor}

    def get(query: dict[str, Any]) -> Any:  # a query parameter is named `path`: not through get_json
        return client.request("GET", "/v1/findings", params={k: v for k, v in query.items() if v is not None}).json()

    page = get(params)
    items = list(page.get("items", []))
    while args.all and page.get("next_cursor"):
        page = get({**params, "cursor": page["next_cursor"]})
        items.extend(page.get("items", []))
    if args.json:
        _print_json({"items": items, "next_cursor": None if args.all else page.get("next_cursor")})
        return EXIT_OK
    print(f"{'ID':<9}{'SEVERITY':<10}{'STATE':<32}{'TOOL:RULE':<24}{'LOCATION':<40}MESSAGE")
    for item in items:
        print(f"{visible(item.get('id', '')):<9}{visible(item.get('severity', '')):<10}{_state_of(item):<32}"
              f"{_shorten(_rule_of(item), 23):<24}{_shorten(_where(item.get('path'), item.get('line')), 39):<40}"
              f"{_shorten(visible(item.get('message', '')), 80)}")
    if not items:
        print("(no findings)")
    if page.get("next_cursor") and not args.all:
        print(f"(more: --cursor {visible(page['next_cursor'])} or --all)")
    return EXIT_OK


def print_finding(finding: dict[str, Any]) -> None:
    print(f"finding {visible(finding.get('id'))}  {visible(finding.get('severity'))}  {_state_of(finding)}")
    rows = [("component", f"{visible(finding.get('workspace_id'))}/{visible(finding.get('component_id'))}"),
            ("location", _where(finding.get("path"), finding.get("line"))),
            ("rule", _rule_of(finding)), ("cwe", finding.get("cwe")), ("message", finding.get("message")),
            ("sources", ", ".join(f"{visible(s.get('tool'))}:{visible(s.get('rule_id'))}"
                                  for s in finding.get("sources") or [] if isinstance(s, dict))),
            ("reason", finding.get("triage_reason")), ("owner", finding.get("triage_owner")),
            ("expires", finding.get("expires_at")), ("triaged", " at ".join(
                visible(v) for v in (finding.get("triaged_by"), finding.get("triaged_at")) if v)),
            ("first seen", finding.get("first_seen_test_id")), ("last seen", finding.get("last_seen_test_id"))]
    for name, value in rows:
        if value:
            print(f"  {name + ' ':<12}{visible(value)}")


def cmd_finding(client: Client, args: argparse.Namespace) -> int:
    finding = client.get_json(finding_path(args.finding_id))
    history = client.get_json(finding_path(args.finding_id, "/history"))
    if args.json:
        _print_json({**finding, "history": history.get("items", [])})
        return EXIT_OK
    print_finding(finding)
    print("  history:")
    for event in history.get("items", []):
        extra = "; ".join(f"{name} {visible(event[key])}" for name, key in
                          (("owner", "owner"), ("until", "expires_at"), ("scan", "scan_test_id")) if event.get(key))
        print(f"    {visible(event.get('at'))}  {visible(event.get('from_state'))} → {visible(event.get('to_state'))}"
              f"  by {visible(event.get('actor'))}"
              f"{': ' + visible(event['reason']) if event.get('reason') else ''}{'  (' + extra + ')' if extra else ''}")
    return EXIT_OK


def parse_expiry(text: str) -> str:
    """``--expires``: a date (00:00 UTC that day) or an ISO 8601 time (UTC unless it names a zone),
    as the API's ``expires_at``."""
    try:
        when = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC) if len(text) == 10 else \
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"--expires takes a date (2027-01-31) or an ISO 8601 time, not {visible(text)!r}",
                       EXIT_USAGE) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat().replace("+00:00", "Z")


def cmd_triage(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"state": args.state}
    for name, value in (("reason", args.reason), ("owner", args.owner)):
        if value is not None:
            body[name] = value
    if args.expires is not None:
        body["expires_at"] = parse_expiry(args.expires)
    finding = client.patch_json(finding_path(args.finding_id), body)
    if args.json:
        _print_json(finding)
        return EXIT_OK
    until = f" until {visible(finding['expires_at'])}" if finding.get("expires_at") else ""
    owner = f", owner {visible(finding['triage_owner'])}" if finding.get("triage_owner") else ""
    print(f"finding {visible(finding.get('id'))} is now {visible(finding.get('state'))}{until}{owner}")
    return EXIT_OK


def _print_entries(title: str, entries: Any) -> None:
    if not isinstance(entries, list) or not entries:
        return
    print(f"{title}:")
    for entry in entries:
        print(f"  {visible(entry.get('severity', '')):<9}{_shorten(_rule_of(entry), 23):<24}"
              f"{_shorten(_where(entry.get('path'), entry.get('line')), 39):<40}"
              f"{_shorten(visible(entry.get('message', '')), 80)}")


def cmd_diff(client: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"against": args.against}
    if args.unchanged:
        params["include_unchanged"] = "true"
    result = client.get_json(scan_path(args.test_id, "/diff"), **params)
    if args.json:
        _print_json(result)
        return EXIT_OK
    base = result.get("base") if isinstance(result.get("base"), dict) else {}
    line = format_diff(result.get("counts"), {"test_id": result.get("against"), "branch": base.get("branch"),
                                              "commit": base.get("commit")})
    print(f"{visible(result.get('test_id'))}: {line}")
    for title in ("new", "updated", "fixed", "unchanged"):
        _print_entries(title, result.get(title))
    return EXIT_OK


# -- keys -------------------------------------------------------------------------------------
def cmd_keys(client: Client, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        created = client.post_json("/v1/keys", {"role": args.role, "workspaces": args.workspace,
                                                "name": args.name})
        if args.json:
            _print_json(created)
        else:
            print(visible(created["key"]))
            print(f"key id {visible(created['key_id'])}, role {visible(created['role'])}, workspaces "
                  f"{visible(','.join(created['workspaces']))} (shown once; store it now)", file=sys.stderr)
        return EXIT_OK
    if args.keys_command == "revoke":
        client.request("DELETE", f"/v1/keys/{quote(args.key_id, safe='')}")
        if args.json:
            _print_json({"key_id": args.key_id, "revoked": True})
        else:
            print(f"revoked {visible(args.key_id)}")
        return EXIT_OK
    listing = client.get_json("/v1/keys")
    if args.json:
        _print_json(listing)
        return EXIT_OK
    print(f"{'KEY ID':<14}{'ROLE':<11}{'WORKSPACES':<30}NAME")
    for item in listing.get("items", []):
        print(f"{visible(item.get('key_id', '')):<14}{visible(item.get('role', '')):<11}"
              f"{visible(','.join(item.get('workspaces', []))):<30}{visible(item.get('name', ''))}")
    return EXIT_OK


# -- artifacts --------------------------------------------------------------------------------
def _artifact_entries(listing: Any) -> list[dict[str, Any]]:
    items = listing
    if isinstance(listing, dict):
        items = next((listing[k] for k in ("artifacts", "items", "files") if k in listing), listing)
    if isinstance(items, dict):  # key -> path
        return [{"path": v, "key": k} for k, v in items.items() if isinstance(v, str)]
    entries: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            entries.append({"path": item})
        elif isinstance(item, dict) and isinstance(item.get("path") or item.get("name"), str):
            entries.append({**item, "path": item.get("path") or item.get("name")})
    return entries


def safe_destination(out: Path, rel: str) -> Path:
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise CliError(f"refusing artifact path {rel!r}: it would leave {out}", EXIT_API)
    return out.joinpath(*parts)


def cmd_artifacts(client: Client, args: argparse.Namespace) -> int:
    try:
        entries = _artifact_entries(client.get_json(scan_path(args.test_id, "/artifacts")))
    except ApiError as exc:
        if exc.code != "endpoint_not_found" or args.out is not None:
            raise
        # A service without the artifacts endpoint still names its bundle files in the record.
        entries = _artifact_entries(client.get_json(scan_path(args.test_id)).get("artifacts") or {})
    wanted = entries if not args.path else [e for e in entries if e["path"] in args.path]
    unknown = set(args.path or []) - {e["path"] for e in entries}
    if unknown:
        raise CliError(f"not in the bundle: {', '.join(map(visible, sorted(unknown)))}", EXIT_API)
    if args.out is None:
        if args.json:
            _print_json(entries)
        else:
            for entry in entries:
                size = entry.get("size")
                print(visible(entry["path"]) + (f"  {size} bytes" if isinstance(size, int) else ""))
        return EXIT_OK
    out = Path(args.out)
    done = []
    for entry in wanted:
        dest = safe_destination(out, entry["path"])
        quoted = "/".join(p for p in PurePosixPath(entry["path"]).parts)
        size = client.download(scan_path(args.test_id, f"/artifacts/{quoted}"), dest)
        done.append({"path": entry["path"], "file": str(dest), "size": size})
        if not args.json:
            print(f"{visible(dest)}  {size} bytes")
    if args.json:
        _print_json(done)
    return EXIT_OK


# -- upload / verify --------------------------------------------------------------------------
def cmd_upload(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"tier": args.tier}
    if args.signer:
        body["signer"] = args.signer
    result = client.post_json(scan_path(args.test_id, "/upload-request"), body)
    status = result.get("upload_status")
    if not args.json:
        print(f"upload requested: permission {visible(result.get('upload_permission_id'))}, "
              f"status {visible(status)}")
    record: dict[str, Any] = {}
    deadline = time.monotonic() + args.wait_timeout
    while args.follow and status not in UPLOAD_FINAL and time.monotonic() < deadline:
        time.sleep(1)
        record = client.get_json(scan_path(args.test_id))
        if record.get("upload_status") != status:
            status = record.get("upload_status")
            if not args.json:
                print(f"upload {visible(status)}")
    if args.json:
        _print_json({**result, "upload_status": status, "verification_proof": record.get("verification_proof"),
                     "remote_artifacts": record.get("remote_artifacts")})
    elif record.get("remote_artifacts"):
        print("remote artifacts: " + json.dumps(record["remote_artifacts"]))
    if not args.follow:
        return EXIT_OK
    if status not in UPLOAD_FINAL:
        raise CliError(f"the upload is still {visible(status)} after {args.wait_timeout:g}s", EXIT_UNAVAILABLE)
    return EXIT_OK if status == "uploaded" else EXIT_VERIFY


def cmd_verify(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle)
    if not bundle.is_dir():
        raise CliError(f"{bundle} is not a folder (download a bundle with `artifacts --out`)", EXIT_USAGE)
    try:
        result = verify_bundle(bundle, Path(args.key), Path(args.attestation) if args.attestation else None)
    except VerifyError as exc:
        raise CliError(f"verification failed: {exc}", EXIT_VERIFY) from exc
    ok = result.ok and not (args.strict and result.unattested)
    if args.json:
        _print_json({"verified": ok, "signature_ok": result.signature_ok, "subjects": result.subjects,
                     "mismatched": result.mismatched, "missing": result.missing,
                     "unattested": result.unattested, "predicate_type": result.predicate_type})
    else:
        print(f"signature: {'valid' if result.signature_ok else 'INVALID (not signed by this key)'}")
        if result.signature_ok:
            print(f"subjects:  {result.subjects} files, "
                  f"{result.subjects - len(result.mismatched) - len(result.missing)} match")
        for name in result.mismatched:
            print(f"  ✗ modified: {visible(name)}")
        for name in result.missing:
            print(f"  ✗ missing:  {visible(name)}")
        for name in result.unattested:
            print(f"  ! not covered by the attestation: {visible(name)}")
        print("verified" if ok else "NOT verified")
    return EXIT_OK if ok else EXIT_VERIFY


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    def global_flags(suppress: bool) -> argparse.ArgumentParser:
        # The same flags work before and after the command; after it they must not reset what was
        # given before it, hence SUPPRESS as the subcommands' default.
        flags = argparse.ArgumentParser(add_help=False)

        def d(value: Any) -> Any:
            return argparse.SUPPRESS if suppress else value

        flags.add_argument("--url", default=d(None),
                           help=f"service URL (env {cfg.ENV_URL}; default {cfg.DEFAULT_URL})")
        flags.add_argument("--api-key", default=d(None), help=f"API key, sent as a Bearer token (env {cfg.ENV_KEY})")
        flags.add_argument("--config", default=d(None),
                           help=f"TOML config file with url and api_key (env {cfg.ENV_CONFIG}; "
                                "default ~/.config/certus-assurance/config.toml)")
        flags.add_argument("--timeout", type=float, default=d(30.0), help="seconds per HTTP request (default 30)")
        flags.add_argument("--json", action="store_true", default=d(False), help="machine-readable output")
        return flags

    common = global_flags(suppress=True)

    parser = argparse.ArgumentParser(
        prog="certus-assurance", description="Submit, watch and gate on Certus Assurance security scans.",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[global_flags(suppress=False)])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    def follow_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--quiet", "-q", action="store_true", help="hide the tools' output lines")
        p.add_argument("--transport", choices=["auto", "ws", "poll"], default="auto",
                       help="WebSocket stream, /events polling, or WebSocket with polling fallback (default)")

    p = add("scan", "submit a scan (from flags and/or a JSON file); --follow to watch it and gate on it")
    p.add_argument("--file", "-f", help="JSON request body (flags override its fields); - for stdin")
    p.add_argument("--workspace", help="workspace_id")
    p.add_argument("--component", help="component_id")
    p.add_argument("--assessment", help="assessment_id")
    p.add_argument("--source-type", help="git (default), directory, archive, or another kind the service offers")
    p.add_argument("--git-url")
    p.add_argument("--branch")
    p.add_argument("--commit")
    p.add_argument("--directory-path")
    p.add_argument("--archive-path")
    p.add_argument("--source-field", action="append", metavar="NAME=VALUE",
                   help="a field of the source kind (repeatable), e.g. for a kind without flags of its own")
    p.add_argument("--profile", help="built-in profile or one the manifest defines (default light)")
    p.add_argument("--manifest", help="JSON manifest file sent inline")
    p.add_argument("--manifest-path", help="manifest inside the source tree")
    p.add_argument("--manifest-uri", help="s3://, oci://, https:// or file:// manifest")
    p.add_argument("--manifest-signature-uri")
    p.add_argument("--requested-by")
    p.add_argument("--follow", action="store_true", help="stream the live log and exit with the verdict")
    p.add_argument("--ignore-policy", action="store_true", help="exit 0 on policy violations (report only)")
    follow_flags(p)
    p.set_defaults(func=cmd_scan)

    p = add("status", "show a scan's status, phases, findings and policy")
    p.add_argument("test_id")
    p.add_argument("--wait", action="store_true", help="wait until the scan ends; exit with its verdict")
    p.set_defaults(func=cmd_status)

    p = add("list", "list scans, newest first")
    p.add_argument("--workspace")
    p.add_argument("--component")
    p.add_argument("--status", choices=["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"])
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--cursor")
    p.add_argument("--all", action="store_true", help="follow every page")
    p.set_defaults(func=cmd_list)

    p = add("logs", "replay a scan's event log, or --follow it live; resumable with --after")
    p.add_argument("test_id")
    p.add_argument("--follow", action="store_true", help="keep tailing until the scan completes")
    p.add_argument("--after", default="0-0", help="only events after this event id")
    follow_flags(p)
    p.set_defaults(func=cmd_logs)

    p = add("cancel", "cancel a queued or running scan")
    p.add_argument("test_id")
    p.set_defaults(func=cmd_cancel)

    p = add("artifacts", "list a scan's bundle files, or download them with --out DIR")
    p.add_argument("test_id")
    p.add_argument("--out", help="download into this folder (keeps the bundle's layout)")
    p.add_argument("--path", action="append", help="only this bundle path (repeatable)")
    p.set_defaults(func=cmd_artifacts)

    p = add("upload", "request publication of a succeeded scan and follow it to its final status")
    p.add_argument("test_id")
    p.add_argument("--tier", choices=["verified", "basic"], default="verified")
    p.add_argument("--signer")
    p.add_argument("--no-follow", dest="follow", action="store_false", help="return once requested")
    p.add_argument("--wait-timeout", type=float, default=600.0, help="seconds to wait for a final status")
    p.set_defaults(func=cmd_upload)

    p = add("findings", "list a component's findings (effective state, severity, rule, place), most severe first")
    p.add_argument("--workspace", required=True)
    p.add_argument("--component", required=True)
    p.add_argument("--state", action="append", metavar="STATE",
                   help=f"effective state ({', '.join(FINDING_STATES)}; a lapsed suppression counts as open); "
                        "repeatable or comma-separated")
    p.add_argument("--severity", action="append", metavar="SEVERITY",
                   help="critical, high, medium, low, info; repeatable or comma-separated")
    p.add_argument("--tool", help="only findings one of whose sources is this tool")
    p.add_argument("--rule", help="only findings one of whose sources is this rule")
    p.add_argument("--path", help="only findings under this path prefix")
    p.add_argument("--new-since", metavar="TEST_ID", help="only findings seen after that scan that it did not see")
    p.add_argument("--search", "-s", metavar="TEXT", help="text in the message, path or rule id")
    p.add_argument("--limit", type=int, default=50, help="findings per page (1-500, default 50)")
    p.add_argument("--cursor")
    p.add_argument("--all", action="store_true", help="follow every page")
    p.set_defaults(func=cmd_findings)

    p = add("finding", "show one finding and the history of its state")
    p.add_argument("finding_id", type=int)
    p.set_defaults(func=cmd_finding)

    p = add("triage", "set a finding's state: accepted_risk (reason, owner, expiry), false_positive (reason) "
                      "or back to open (needs a triager or admin key)")
    p.add_argument("finding_id", type=int)
    p.add_argument("--state", required=True, choices=TRIAGE_STATES)
    p.add_argument("--reason", help="why (required for accepted_risk and false_positive)")
    p.add_argument("--owner", help="who owns the accepted risk (required for accepted_risk)")
    p.add_argument("--expires", metavar="WHEN",
                   help="when the suppression lapses: a date (00:00 UTC that day) or an ISO 8601 time "
                        "(required for accepted_risk)")
    p.set_defaults(func=cmd_triage)

    p = add("diff", "compare a scan with another scan of the same component: new, fixed, unchanged findings")
    p.add_argument("test_id")
    p.add_argument("--against", metavar="OTHER_ID",
                   help="the scan to compare with (default: the baseline the scan was compared with)")
    p.add_argument("--unchanged", action="store_true", help="also list the unchanged findings")
    p.set_defaults(func=cmd_diff)

    p = add("keys", "manage API keys (needs an admin key): create, list, revoke")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    k = keys_sub.add_parser("create", help="create a key and print it once", parents=[common])
    k.add_argument("--role", required=True, choices=["reader", "submitter", "publisher", "triager", "admin"])
    k.add_argument("--workspace", action="append", required=True,
                   help="a workspace the key may use; repeat for several; '*' for all")
    k.add_argument("--name", default="", help="a label shown by list")
    keys_sub.add_parser("list", help="list keys (ids, roles, workspaces; never the keys)", parents=[common])
    k = keys_sub.add_parser("revoke", help="revoke a key by its id (not the key making the request)",
                            parents=[common])
    k.add_argument("key_id")
    p.set_defaults(func=cmd_keys)

    p = add("verify", "verify a downloaded bundle's attestation signature and file digests, offline")
    p.add_argument("bundle", help="folder holding the downloaded bundle")
    p.add_argument("--key", required=True, help="cosign public key (PEM, ECDSA P-256), e.g. cosign.pub")
    p.add_argument("--attestation", help="DSSE envelope (default BUNDLE/reports/signing/attestation.intoto.json)")
    p.add_argument("--strict", action="store_true",
                   help="kept for old scripts: an uncovered file always fails the check now")
    p.set_defaults(func=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Fields are escaped where they are printed; the guard catches any that were not, so nothing
    # the service or a scanned repository sent can drive the terminal.
    out, err = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, GuardedStream(out, OWN_SEQUENCES))
    sys.stderr = cast(TextIO, GuardedStream(err))
    try:
        return _run(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            return cmd_verify(args)
        conf = cfg.resolve(args.url, args.api_key, args.config, args.timeout)
        return int(args.func(Client(conf), args))
    except ApiError as exc:
        print(exc.describe(), file=sys.stderr)
        return exc.exit_code
    except CliError as exc:
        print(f"error: {visible(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except cfg.ConfigError as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
