// Certus Assurance web page: plain JavaScript against the public API (no build step, no CDN).
// Everything from the API is inserted with textContent, never as HTML, and passes through visible().
"use strict";

const API = "/v1/security-scans";
const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const UPLOAD_FINAL = ["uploaded", "denied", "upload_failed"];
const $ = (sel) => document.querySelector(sel);

// Text from a scanned repository or a client may hold control characters, bidirectional overrides
// (U+202E shows "exe.txt" as "txt.exe") or zero-width characters: each is shown as an escape such as
// \x1b or \u202e, so nothing is hidden or reordered and the attempt is visible. The same rule as
// tasks/textsafe.py: Unicode's control, format, surrogate and line/paragraph separator categories.
const UNSAFE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/gu;
const SHORT_ESCAPES = { "\t": "\\t", "\n": "\\n", "\r": "\\r" };

function visible(value) {
  if (value === null || value === undefined) return "";
  return String(value).replace(UNSAFE, (ch) => {
    if (ch in SHORT_ESCAPES) return SHORT_ESCAPES[ch];
    const code = ch.codePointAt(0);
    const hex = code.toString(16);
    return code < 0x100 ? `\\x${hex.padStart(2, "0")}` : code < 0x10000 ? `\\u${hex.padStart(4, "0")}` : `\\U${hex.padStart(8, "0")}`;
  });
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = visible(v); else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(visible(String(c))));
  return node;
}

function apiKey() { return sessionStorage.getItem("certus-api-key") || ""; }

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(`${status} ${visible(e.code || "error")}: ${visible(e.message || "request failed")}`);
    this.status = status; this.code = e.code; this.fields = e.fields;
  }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (apiKey()) headers["Authorization"] = `Bearer ${apiKey()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

function describe(err) {
  let text = err.message;
  if (err.fields) for (const [k, v] of Object.entries(err.fields)) text += `\n  ${visible(k)}: ${[].concat(v).map(visible).join("; ")}`;
  return text;
}

function scanPath(id, suffix = "") { return `${API}/${encodeURIComponent(id)}${suffix}`; }
function artifactUrl(id, path) { return scanPath(id, "/artifacts/" + path.split("/").map(encodeURIComponent).join("/")); }

// ---------------------------------------------------------------------------------------------
// Routing
let current = null;  // the open scan view, closed when navigating away

function route() {
  if (current) { current.close(); current = null; }
  for (const s of document.querySelectorAll("main > section")) s.hidden = true;
  const hash = location.hash || "#/";
  const m = hash.match(/^#\/scans\/(test_[0-9a-f]{12})$/);
  if (m) { $("#view-scan").hidden = false; current = new ScanView(m[1]); current.open(); }
  else if (hash === "#/new") { $("#view-new").hidden = false; }
  else { $("#view-list").hidden = false; loadList(false); }
}

// ---------------------------------------------------------------------------------------------
// List of scans
let listCursor = null;

async function loadList(more) {
  const params = new URLSearchParams({ limit: "50" });
  for (const [k, v] of new FormData($("#filter"))) if (v) params.set(k, v);
  if (more && listCursor) params.set("cursor", listCursor);
  const body = $("#scans tbody");
  $("#list-error").hidden = true;
  try {
    const page = await api("GET", `${API}?${params}`);
    if (!more) body.replaceChildren();
    for (const s of page.items) body.append(scanRow(s));
    listCursor = page.next_cursor;
    $("#more").hidden = !listCursor;
  } catch (err) {
    $("#list-error").textContent = describe(err); $("#list-error").hidden = false;
  }
}

function scanRow(s) {
  const sev = (s.summary && s.summary.by_severity) || {};
  const policy = s.policy ? (s.policy.passed ? "passed" : "failed") : "—";
  const tr = el("tr", { "data-test-id": s.test_id },
    el("td", {}, el("a", { href: `#/scans/${s.test_id}`, text: s.test_id })),
    el("td", { class: `s-${s.status}`, text: s.status }),
    el("td", { text: `${s.workspace_id} / ${s.component_id}` }),
    el("td", { text: s.profile }));
  for (const k of ["critical", "high", "medium", "low"]) tr.append(el("td", { class: "num", text: s.summary ? (sev[k] || 0) : "" }));
  tr.append(el("td", { class: policy, text: policy }), el("td", { text: s.created_at || "" }));
  return tr;
}

// ---------------------------------------------------------------------------------------------
// Submit
async function submitScan(ev) {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const body = {};
  for (const [k, v] of form) if (v !== "" && k !== "manifest") body[k] = v;
  const manifest = (form.get("manifest") || "").trim();
  $("#submit-error").hidden = true;
  try {
    if (manifest) body.manifest = JSON.parse(manifest);
    const created = await api("POST", API, body);
    location.hash = `#/scans/${created.test_id}`;
  } catch (err) {
    $("#submit-error").textContent = err instanceof SyntaxError ? `manifest is not valid JSON: ${err.message}` : describe(err);
    $("#submit-error").hidden = false;
  }
}

// ---------------------------------------------------------------------------------------------
// One scan: record, live log (WebSocket with reconnect from the last id, /events as fallback)
class ScanView {
  constructor(id) {
    this.id = id; this.lastId = "0-0"; this.seen = new Set(); this.ws = null; this.closed = false;
    this.wsFailures = 0; this.complete = false; this.record = null; this.timer = null; this.refreshTimer = null;
    this.sarifLoaded = false;
  }

  open() {
    $("#scan-id").textContent = this.id;
    for (const sel of ["#log", "#phases tbody", "#findings tbody", "#sarif tbody", "#artifacts", "#scan-meta"]) $(sel).replaceChildren();
    $("#policy").textContent = "—"; $("#sarif-note").textContent = ""; $("#upload-status").textContent = "";
    $("#scan-error").hidden = true;
    $("#cancel-button").onclick = () => this.cancel();
    $("#upload-button").onclick = () => this.upload();
    this.refresh().then(() => this.connect());
  }

  close() { this.closed = true; if (this.ws) this.ws.close(); clearTimeout(this.timer); clearTimeout(this.refreshTimer); }

  // Many events in a burst (a replay) cause one status fetch, not one each.
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => { if (!this.closed) this.refresh(); }, 250);
  }

  async refresh() {
    try { this.render(await api("GET", scanPath(this.id))); }
    catch (err) { $("#scan-error").textContent = describe(err); $("#scan-error").hidden = false; }
  }

  async connect() {
    if (this.closed || this.complete) return;
    if (this.wsFailures >= 3 || !("WebSocket" in window)) { this.poll(); return; }
    // Browsers cannot set headers on a WebSocket: trade the key for a short-lived, single-use token.
    let token = "";
    if (apiKey()) {
      try { token = (await api("POST", "/v1/stream-tokens")).token; }
      catch (_) { this.wsFailures += 1; this.timer = setTimeout(() => this.connect(), 1000); return; }
    }
    if (this.closed || this.complete) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const query = `after=${encodeURIComponent(this.lastId)}` + (token ? `&token=${encodeURIComponent(token)}` : "");
    const ws = new WebSocket(`${proto}//${location.host}${scanPath(this.id, "/stream")}?${query}`);
    this.ws = ws;
    let got = false;
    ws.onopen = () => { $("#log-state").textContent = "live"; };
    ws.onmessage = (m) => { got = true; this.wsFailures = 0; this.onEvent(JSON.parse(m.data)); };
    ws.onclose = (e) => {
      this.ws = null;
      if (this.closed || this.complete) return;
      if (e.code === 4404) { $("#log-state").textContent = "unknown scan"; return; }
      if (!got) this.wsFailures += 1;
      $("#log-state").textContent = "reconnecting…";
      this.timer = setTimeout(() => this.connect(), Math.min(500 * 2 ** this.wsFailures, 5000));
    };
  }

  async poll() {
    $("#log-state").textContent = "polling";
    while (!this.closed && !this.complete) {
      try {
        const page = await api("GET", `${scanPath(this.id, "/events")}?after=${encodeURIComponent(this.lastId)}&limit=500`);
        for (const e of page.events) this.onEvent(e);
        if (page.complete) break;
        if (!page.events.length) await new Promise((r) => { this.timer = setTimeout(r, 1000); });
      } catch (_) { await new Promise((r) => { this.timer = setTimeout(r, 3000); }); }
    }
  }

  onEvent(e) {
    if (this.seen.has(e.id)) return;  // a reconnect never shows an event twice
    this.seen.add(e.id); this.lastId = e.id;
    const log = $("#log");
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const t = new Date((e.timestamp || 0) * 1000).toLocaleTimeString();
    let line;
    switch (e.type) {
      case "phase": line = el("div", { class: "phase", text: `${t} ▶ ${e.phase}: ${e.message || ""}` }); this.scheduleRefresh(); break;
      case "tool_start": line = el("div", { class: "tool", text: `${t}   ⋯ ${e.tool} started: ${(e.command || []).join(" ")}` }); break;
      case "log": line = el("div", { class: e.stream === "stderr" ? "stderr" : "", text: `${t}     ${e.tool} | ${e.line}` }); break;
      case "tool_complete": line = el("div", { class: "tool", text: `${t}   ✓ ${e.tool} exit ${e.exit_code}, ${e.findings} findings in ${Number(e.duration_s || 0).toFixed(1)}s` }); break;
      case "error": line = el("div", { class: "err", text: `${t} ✗ ${e.code}: ${e.message}` }); break;
      case "upload": line = el("div", { class: "tool", text: `${t} ⇪ upload ${e.upload_status}: ${e.detail || ""}` }); this.scheduleRefresh(); break;
      case "scan_complete":
        line = el("div", { class: "done", text: `${t} ■ scan ${e.status}` });
        this.complete = true; $("#log-state").textContent = "complete"; this.scheduleRefresh(); break;
      default: line = el("div", { text: `${t} ${e.type}` });
    }
    line.dataset.type = e.type;
    log.append(line);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  render(r) {
    this.record = r;
    const badge = $("#scan-status");
    badge.textContent = visible(r.status); badge.className = `badge s-${r.status}`;
    const meta = $("#scan-meta"); meta.replaceChildren();
    const rows = [["workspace", r.workspace_id], ["component", r.component_id], ["assessment", r.assessment_id],
      ["profile", r.profile], ["source", r.git_url || r.directory_path || r.archive_path], ["branch", r.branch],
      ["commit", r.resolved_commit || r.commit], ...Object.entries(r.source_fields || {}),
      ["created", r.created_at], ["completed", r.completed_at], ["manifest", r.manifest_digest]];
    for (const [k, v] of rows) if (v) meta.append(el("dt", { text: k }), el("dd", { text: v }));
    for (const e of r.errors || []) meta.append(el("dt", { class: "failed", text: "error" }), el("dd", { text: `${e.code}: ${e.message}` }));
    for (const w of r.warnings || []) meta.append(el("dt", { text: "warning" }), el("dd", { text: `${w.code}: ${w.message}` }));

    const phases = $("#phases tbody"); phases.replaceChildren();
    for (const p of r.phases || []) {
      phases.append(el("tr", {}, el("td", { text: p.name }), el("td", { text: p.status }),
        el("td", { class: "num", text: p.duration_s == null ? "…" : `${Number(p.duration_s).toFixed(2)} s` })));
    }
    this.renderFindings(r.summary);
    this.renderPolicy(r.policy);
    this.renderArtifacts(r);
    const terminal = ["SUCCEEDED", "FAILED", "CANCELLED"].includes(r.status);
    $("#cancel-button").hidden = terminal;
    const us = r.upload_status;
    $("#upload-button").disabled = r.status !== "SUCCEEDED" || (us && !UPLOAD_FINAL.includes(us)) || us === "uploaded";
    const status = $("#upload-status");
    status.textContent = us ? `upload: ${visible(us)}` : ""; status.className = us || "";
    if (us && !UPLOAD_FINAL.includes(us)) {
      clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => { if (!this.closed) this.refresh(); }, 1500);
    }
    if (terminal && !this.sarifLoaded && r.artifacts) { this.sarifLoaded = true; this.loadSarif(r); }
  }

  renderFindings(summary) {
    const body = $("#findings tbody"); body.replaceChildren();
    if (!summary) return;
    const byTool = summary.by_tool || {};
    const tools = Object.keys(byTool).sort();
    for (const tool of tools) {
      const counts = byTool[tool] || {};
      const tr = el("tr", { "data-tool": tool }, el("td", { text: tool }));
      let total = 0;
      for (const s of SEVERITIES) {
        const n = counts[s] || 0;
        total += n;
        tr.append(el("td", { class: n ? `num sev-${s}` : "num", text: n }));
      }
      tr.append(el("td", { class: "num", text: total }));
      body.append(tr);
    }
    const sev = summary.by_severity || {};
    const tr = el("tr", { class: "total" }, el("th", { text: "all tools" }));
    for (const s of SEVERITIES) tr.append(el("th", { class: "num", text: sev[s] || 0 }));
    tr.append(el("th", { class: "num", text: summary.total != null ? summary.total : "" }));
    body.append(tr);
  }

  renderPolicy(policy) {
    const box = $("#policy"); box.replaceChildren();
    if (!policy) { box.textContent = "—"; return; }
    box.append(el("strong", { class: policy.passed ? "passed" : "failed", text: policy.passed ? "passed" : "failed" }),
      el("span", { text: ` thresholds ${JSON.stringify(policy.thresholds || {})}` }));
    const ul = el("ul");
    for (const v of policy.violations || []) ul.append(el("li", { class: "failed", text: v.message }));
    box.append(ul);
  }

  renderArtifacts(r) {
    const ul = $("#artifacts"); ul.replaceChildren();
    const paths = [...new Set(Object.values(r.artifacts || {}).filter((p) => typeof p === "string"))].sort();
    if (!paths.length) { ul.append(el("li", { text: "—" })); return; }
    for (const p of paths) ul.append(el("li", {}, el("a", { href: artifactUrl(this.id, p), download: visible(p.split("/").pop()), text: p })));
  }

  async loadSarif(r) {
    const sarifs = Object.values(r.artifacts || {}).filter((p) => typeof p === "string" && p.endsWith(".sarif.json"));
    const body = $("#sarif tbody");
    const rows = [];
    const failures = [];
    for (const path of sarifs) {
      try {
        const headers = apiKey() ? { "Authorization": `Bearer ${apiKey()}` } : {};
        const resp = await fetch(artifactUrl(this.id, path), { headers });
        if (!resp.ok) throw new Error(`${resp.status}`);
        const doc = await resp.json();
        for (const run of doc.runs || []) {
          const tool = (run.tool && run.tool.driver && run.tool.driver.name) || path.split("/").pop();
          const rules = {};
          for (const rule of (run.tool && run.tool.driver && run.tool.driver.rules) || []) rules[rule.id] = rule;
          for (const res of run.results || []) {
            const loc = (res.locations || [])[0];
            const phys = loc && loc.physicalLocation;
            const where = phys ? `${(phys.artifactLocation || {}).uri || ""}:${(phys.region || {}).startLine || ""}` : "";
            const props = res.properties || {};
            const severity = props.severity || props["security-severity"] || res.level || "warning";
            rows.push({ severity: String(severity).toLowerCase(), tool, rule: res.ruleId || "",
              message: (res.message && res.message.text) || (rules[res.ruleId] && rules[res.ruleId].name) || "", where });
          }
        }
      } catch (err) { failures.push(`${visible(path)} (${visible(err.message)})`); }
    }
    const rank = (s) => { const i = [...SEVERITIES, "error", "warning", "note"].indexOf(s); return i < 0 ? 99 : i; };
    rows.sort((a, b) => rank(a.severity) - rank(b.severity) || a.tool.localeCompare(b.tool));
    for (const x of rows) {
      body.append(el("tr", {}, el("td", { class: `sev-${x.severity}`, text: x.severity }), el("td", { text: x.tool }),
        el("td", { text: x.rule }), el("td", { text: x.message }), el("td", { text: x.where })));
    }
    $("#sarif-note").textContent = !sarifs.length ? "No SARIF reports in this bundle."
      : failures.length ? `Could not load from the artifacts endpoint: ${failures.join(", ")}`
      : `${rows.length} results from ${sarifs.length} report(s).`;
  }

  async cancel() {
    try { await api("POST", scanPath(this.id, "/cancel")); this.refresh(); }
    catch (err) { $("#scan-error").textContent = describe(err); $("#scan-error").hidden = false; }
  }

  async upload() {
    $("#upload-button").disabled = true;
    try {
      const res = await api("POST", scanPath(this.id, "/upload-request"), { tier: $("#upload-tier").value });
      $("#upload-status").textContent = `upload: ${visible(res.upload_status)}`;
      this.refresh();
    } catch (err) {
      $("#upload-status").textContent = describe(err); $("#upload-status").className = "failed";
      $("#upload-button").disabled = false;
    }
  }
}

// ---------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  const key = $("#api-key");
  key.value = apiKey();
  key.addEventListener("change", () => { sessionStorage.setItem("certus-api-key", key.value.trim()); route(); });
  $("#filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadList(false); });
  $("#more").addEventListener("click", () => loadList(true));
  $("#submit-form").addEventListener("submit", submitScan);
  window.addEventListener("hashchange", route);
  route();
  // keep the list fresh while it is shown
  setInterval(() => { if (!$("#view-list").hidden) loadList(false); }, 5000);
});
