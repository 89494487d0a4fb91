// Certus Assurance web page: plain JavaScript against the public API (no build step, no CDN).
// Everything from the API is inserted with textContent, never as HTML, and passes through visible().
"use strict";

const API = "/v1/security-scans";
const FINDINGS = "/v1/findings";
const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const UPLOAD_FINAL = ["uploaded", "denied", "upload_failed"];
const SARIF_PAGE = 200;  // SARIF results shown at a time in the flat list
// The logical finding a SARIF result belongs to (its fingerprint in the findings store).
const LOGICAL_KEY = "certusLogicalFinding/v1";
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

// A link only for http(s) addresses: a help URI comes from a tool's report, so never javascript: or data:.
function safeUrl(value) {
  try {
    const url = new URL(String(value));
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch (_) { return null; }
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
function componentHash(workspace, component) { return `#/components/${encodeURIComponent(workspace)}/${encodeURIComponent(component)}`; }
const SLUG = "[a-z0-9][a-z0-9-]{0,62}";
function artifactUrl(id, path) { return scanPath(id, "/artifacts/" + path.split("/").map(encodeURIComponent).join("/")); }

// ---------------------------------------------------------------------------------------------
// Routing
let current = null;  // the open scan or component view, closed when navigating away

function route() {
  if (current) { current.close(); current = null; }
  for (const s of document.querySelectorAll("main > section")) s.hidden = true;
  const hash = location.hash || "#/";
  const m = hash.match(/^#\/scans\/(test_[0-9a-f]{12})$/);
  const c = hash.match(new RegExp(`^#/components/(${SLUG})/(${SLUG})$`));
  if (m) { $("#view-scan").hidden = false; current = new ScanView(m[1]); current.open(); }
  else if (c) { $("#view-component").hidden = false; current = new ComponentView(c[1], c[2]); current.open(); }
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
    el("td", {}, el("a", { href: componentHash(s.workspace_id, s.component_id), text: `${s.workspace_id} / ${s.component_id}` })),
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
    this.sarifLoaded = false; this.panel = null; this.help = new Map(); this.snippets = new Map(); this.sarifRows = []; this.sarifShown = 0;
  }

  open() {
    $("#scan-id").textContent = this.id;
    for (const sel of ["#log", "#phases tbody", "#findings tbody", "#sarif tbody", "#artifacts", "#scan-meta", "#scan-findings"]) $(sel).replaceChildren();
    $("#policy").textContent = "—"; $("#sarif-note").textContent = ""; $("#upload-status").textContent = "";
    $("#scan-component-link").textContent = ""; $("#scan-findings-note").textContent = "";
    $("#sarif-more").hidden = true; $("#sarif-more").onclick = () => this.showSarif();
    $("#scan-error").hidden = true;
    $("#cancel-button").onclick = () => this.cancel();
    $("#upload-button").onclick = () => this.upload();
    this.refresh().then(() => this.connect());
  }

  close() {
    this.closed = true; if (this.ws) this.ws.close(); clearTimeout(this.timer); clearTimeout(this.refreshTimer);
    if (this.panel) this.panel.close();
  }

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
    for (const [k, v] of rows) {
      if (!v) continue;
      const value = k === "component" ? el("a", { href: componentHash(r.workspace_id, r.component_id), text: v }) : v;
      meta.append(el("dt", { text: k }), el("dd", {}, value));
    }
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
    this.renderFindingsPanel(r, terminal);
  }

  // The component's findings from the findings store, with this scan's comparison with its baseline.
  renderFindingsPanel(r, terminal) {
    const link = $("#scan-component-link");
    link.textContent = visible(`${r.workspace_id} / ${r.component_id}`);
    link.setAttribute("href", componentHash(r.workspace_id, r.component_id));
    if (!terminal) { $("#scan-findings-note").textContent = "A scan's findings are recorded when it ends."; return; }
    if (this.panel) return;
    const baseline = r.summary && r.summary.baseline && r.summary.baseline.test_id ? r.summary.baseline : null;
    $("#scan-findings-note").textContent = "Every finding the component's recorded scans saw, one page at a time. "
      + (baseline ? "The badges compare this scan with its baseline." : "This scan was not compared with a baseline.");
    this.panel = new FindingsPanel($("#scan-findings"), {
      workspace: r.workspace_id, component: r.component_id, scan: r, baseline, help: this.help, snippets: this.snippets });
    this.panel.load();
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
    const rows = [];
    const failures = [];
    for (const path of sarifs) {
      try {
        const headers = apiKey() ? { "Authorization": `Bearer ${apiKey()}` } : {};
        const resp = await fetch(artifactUrl(this.id, path), { headers });
        if (!resp.ok) throw new Error(`${resp.status}`);
        const doc = await resp.json();
        for (const run of doc.runs || []) {
          const tool = String((run.tool && run.tool.driver && run.tool.driver.name) || path.split("/").pop());
          const rules = {};
          for (const rule of (run.tool && run.tool.driver && run.tool.driver.rules) || []) {
            if (!rule || typeof rule.id !== "string") continue;
            rules[rule.id] = rule;
            const help = safeUrl(rule.helpUri);
            if (help) this.help.set(ruleKey(tool, rule.id), help);
          }
          for (const res of run.results || []) {
            const loc = (res.locations || [])[0];
            const phys = loc && loc.physicalLocation;
            const where = phys ? `${(phys.artifactLocation || {}).uri || ""}:${(phys.region || {}).startLine || ""}` : "";
            const logical = res.fingerprints && res.fingerprints[LOGICAL_KEY];
            const snippet = phys && phys.region && phys.region.snippet && phys.region.snippet.text;
            if (typeof logical === "string" && typeof snippet === "string" && !this.snippets.has(logical)) this.snippets.set(logical, snippet);
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
    this.sarifRows = rows; this.sarifShown = 0;
    if (this.closed) return;
    this.showSarif();
    if (this.panel) this.panel.refreshRows();  // the rule help links and snippets are known now
    $("#sarif-note").textContent = !sarifs.length ? "No SARIF reports in this bundle."
      : failures.length ? `Could not load from the artifacts endpoint: ${failures.join(", ")}`
      : `${rows.length} results from ${sarifs.length} report(s).`;
  }

  // The flat list of every tool's results, a few hundred rows at a time.
  showSarif() {
    const body = $("#sarif tbody");
    const next = this.sarifRows.slice(this.sarifShown, this.sarifShown + SARIF_PAGE);
    for (const x of next) {
      body.append(el("tr", {}, el("td", { class: `sev-${x.severity}`, text: x.severity }), el("td", { text: x.tool }),
        el("td", { text: x.rule }), el("td", { text: x.message }), el("td", { text: x.where })));
    }
    this.sarifShown += next.length;
    const left = this.sarifRows.length - this.sarifShown;
    $("#sarif-more").hidden = left <= 0;
    $("#sarif-more").textContent = `Show more results (${left} not shown)`;
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
// Findings from the findings store: one page at a time through the API's cursor, grouped on the
// page by file, rule or severity, with the scan's comparison with its baseline and triage.
const STATE_LABELS = { open: "open", false_positive: "false positive", accepted_risk: "accepted risk", fixed: "fixed" };
const TRIAGE = {
  false_positive: { button: "False positive", submit: "Mark as false positive" },
  accepted_risk: { button: "Accept risk", submit: "Accept the risk" },
  open: { button: "Reopen", submit: "Reopen" },
};
const BASELINE_TITLES = {
  new: "seen by this scan, not by its baseline",
  updated: "seen by both, with another severity",
  unchanged: "seen by this scan and its baseline alike",
  fixed: "seen by the baseline, not by this scan",
};
const COLUMNS = 7;
const COUNT_LIMIT = 500;  // the most findings one count asks for (then it shows "500+")
let panelIds = 0;

function ruleKey(tool, rule) { return `${tool}\u0000${rule}`; }
function place(f) { return f.path ? (f.line ? `${f.path}:${f.line}` : f.path) : "—"; }
function day(iso) { return iso ? String(iso).slice(0, 10) : ""; }
function sumOf(by) { return Object.values(by || {}).reduce((a, b) => a + (Number(b) || 0), 0); }
function countsText(by) {
  const parts = SEVERITIES.filter((s) => by && by[s]).map((s) => `${by[s]} ${s}`);
  return parts.length ? parts.join(", ") : "none";
}
function scanLink(id) { return id ? el("a", { href: `#/scans/${encodeURIComponent(id)}`, text: id }) : ""; }
// Text that may run over several lines (a reason, a code snippet): each line is escaped, the
// line breaks are kept.
function multiline(tag, text, props) {
  const node = el(tag, props || {});
  node.textContent = String(text).split("\n").map(visible).join("\n");
  return node;
}
function tomorrow() { return new Date(Date.now() + 86400000).toISOString().slice(0, 10); }

// A key the service refused to let triage (403): its triage buttons stay hidden until another key
// is entered. The API does not say a key's role, so the page learns it from the first refusal.
let triageRefusal = null;
function mayTriage() { return !(triageRefusal && triageRefusal.key === apiKey()); }

class FindingsPanel {
  // opts: workspace, component, scan (its record, or null), baseline ({test_id, commit, branch} or
  // null), help (Map tool+rule -> help URI), snippets (Map fingerprint -> code), state (filter).
  constructor(container, opts) {
    this.opts = opts; this.uid = ++panelIds;
    this.root = document.getElementById("findings-panel").content.firstElementChild.cloneNode(true);
    container.replaceChildren(this.root);
    this.form = this.part("filter"); this.table = this.part("table");
    this.items = []; this.cursors = [null]; this.page = 0; this.seq = 0; this.closed = false; this.rendered = false;
    this.diff = null; this.diffReady = Promise.resolve(); this.searchTimer = null;
    this.expanded = new Set(); this.triaging = new Map(); this.histories = new Map(); this.messages = new Map();
    const f = this.form.elements;
    if (opts.state !== undefined) f.state.value = opts.state;
    this.part("new").hidden = !opts.baseline;
    this.table.classList.toggle("no-diff", !opts.baseline);
    this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.restart(); });
    f.q.addEventListener("input", () => { clearTimeout(this.searchTimer); this.searchTimer = setTimeout(() => this.restart(), 350); });
    for (const name of ["severity", "state", "limit", "new_only"]) f[name].addEventListener("change", () => this.restart());
    f.group.addEventListener("change", () => this.renderRows());
    this.part("prev").addEventListener("click", () => this.go(this.page - 1));
    this.part("next").addEventListener("click", () => this.go(this.page + 1));
    this.showRefusal();
  }

  part(name) { return this.root.querySelector(`.fp-${name}`); }
  close() { this.closed = true; clearTimeout(this.searchTimer); }

  load() {
    if (this.opts.baseline) this.diffReady = this.loadDiff();
    return this.fetchPage();
  }

  setFilter(values) {
    for (const [k, v] of Object.entries(values)) this.form.elements[k].value = v;
    return this.restart();
  }

  restart() { clearTimeout(this.searchTimer); this.cursors = [null]; this.page = 0; return this.fetchPage(); }

  go(page) {
    if (page < 0 || page >= this.cursors.length) return undefined;
    this.page = page;
    return this.fetchPage();
  }

  query() {
    const f = this.form.elements;
    const params = new URLSearchParams({ workspace_id: this.opts.workspace, component_id: this.opts.component });
    for (const name of ["q", "severity", "state", "path"]) { const v = f[name].value.trim(); if (v) params.set(name, v); }
    if (f.new_only.checked && this.opts.baseline) params.set("new_since", this.opts.baseline.test_id);
    params.set("limit", f.limit.value);
    const cursor = this.cursors[this.page];
    if (cursor) params.set("cursor", cursor);
    return params;
  }

  async fetchPage() {
    const seq = ++this.seq;
    const params = this.query();
    this.part("error").hidden = true;
    this.root.setAttribute("aria-busy", "true");
    try {
      const page = await api("GET", `${FINDINGS}?${params}`);
      await this.diffReady;
      if (seq !== this.seq || this.closed) return;
      this.items = page.items;
      this.cursors.length = this.page + 1;
      if (page.next_cursor) this.cursors.push(page.next_cursor);
      this.renderRows();
      if (!this.rendered) { this.rendered = true; performance.mark("certus:findings-first-page"); }
    } catch (err) {
      if (seq !== this.seq || this.closed) return;
      this.items = []; this.renderRows();
      this.part("error").textContent = describe(err); this.part("error").hidden = false;
    } finally {
      if (seq === this.seq) this.root.removeAttribute("aria-busy");
    }
  }

  // The per-finding comparison with the baseline (new, updated and fixed sets; a finding this scan
  // saw that is in none of them is unchanged), and a line of its counts.
  async loadDiff() {
    const base = this.opts.baseline;
    const line = this.part("diff");
    const where = [base.branch, base.commit && String(base.commit).slice(0, 7)].filter(Boolean).join(" @ ");
    const head = [el("span", { text: "Compared with the baseline " }), scanLink(base.test_id),
      el("span", { text: where ? ` (${where})` : "" }), el("span", { text: ": " })];
    try {
      const d = await api("GET", `${scanPath(this.opts.scan.test_id, "/diff")}?against=${encodeURIComponent(base.test_id)}`);
      this.diff = { new: new Set(d.new.map((e) => e.finding_id)), updated: new Set(d.updated.map((e) => e.finding_id)),
        fixed: new Set(d.fixed.map((e) => e.finding_id)) };
      line.replaceChildren(...head, ...this.diffCounts(d.counts));
      this.showFixed(d.fixed);
    } catch (err) {
      this.diff = null;
      const counts = this.opts.scan.summary && this.opts.scan.summary.diff;
      line.replaceChildren(...head, ...(counts ? this.diffCounts(counts) : []),
        el("span", { class: "error", text: ` (the comparison of each finding could not be loaded: ${err.message})` }));
    }
    line.hidden = false;
    this.table.classList.toggle("no-diff", !this.diff);
  }

  diffCounts(counts) {
    const out = [];
    for (const name of ["new", "updated", "fixed", "unchanged"]) {
      const by = counts[name];
      if (!by || (name === "updated" && !sumOf(by))) continue;
      if (out.length) out.push(el("span", { text: " · " }));
      out.push(el("span", { class: `badge b-${name}`, "data-count": name, text: `${sumOf(by)} ${name}` }));
      if (name !== "unchanged" && sumOf(by)) out.push(el("span", { text: ` (${countsText(by)})` }));
    }
    return out;
  }

  showFixed(fixed) {
    const box = this.part("fixed");
    if (!fixed.length) { box.hidden = true; return; }
    const shown = fixed.slice(0, 100);
    box.querySelector("summary").textContent = `Fixed since the baseline: ${fixed.length}` + (fixed.length > shown.length ? ` (the first ${shown.length} listed)` : "");
    const ul = box.querySelector("ul"); ul.replaceChildren();
    for (const e of shown) {
      ul.append(el("li", {}, el("span", { class: `sev-${e.severity}`, text: e.severity }), el("span", { text: " " }),
        el("code", { text: place(e) }), el("span", { text: ` ${e.tool} ${e.rule_id}: ${e.message}` })));
    }
    box.hidden = false;
  }

  baselineState(f) {
    if (!this.diff) return "";
    for (const name of ["new", "updated", "fixed"]) if (this.diff[name].has(f.id)) return name;
    return f.last_seen_test_id === this.opts.scan.test_id ? "unchanged" : "";
  }

  // The rows again (the help links and snippets arrived, or a refusal hid the triage buttons).
  refreshRows() { if (this.rendered) this.renderRows(); }

  renderRows() {
    for (const body of this.table.querySelectorAll("tbody")) body.remove();
    const mode = this.form.elements.group.value;
    const groups = new Map();
    for (const f of this.items) {
      const key = mode === "severity" ? f.severity : mode === "rule" ? `${f.tool} ${f.rule_id}` : (f.path || "(no file)");
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(f);
    }
    const keys = [...groups.keys()];  // most severe first, as the API orders the findings
    if (mode === "severity") keys.sort((a, b) => SEVERITIES.indexOf(a) - SEVERITIES.indexOf(b));
    for (const key of keys) {
      const list = groups.get(key);
      const body = el("tbody", { class: "fgroup", "data-group": key });
      const head = el("th", { scope: "rowgroup", colspan: String(COLUMNS) }, el("span", { class: "group-name", text: key }),
        el("span", { class: "group-count", text: ` (${list.length})` }));
      if (mode === "rule") {
        const help = this.opts.help.get(ruleKey(list[0].tool, list[0].rule_id));
        if (help) head.append(el("span", { text: " " }), el("a", { href: help, target: "_blank", rel: "noopener noreferrer", text: "rule help" }));
      }
      body.append(el("tr", { class: "group-head" }, head));
      for (const f of list) this.appendFinding(body, f);
      this.table.append(body);
    }
    const limit = Number(this.form.elements.limit.value);
    const first = this.page * limit + 1;
    const more = this.cursors.length > this.page + 1;
    this.part("caption").textContent = this.items.length
      ? `Findings ${first}–${first + this.items.length - 1}${more ? " (more on the next pages)" : ""}, grouped by ${mode}` : "Findings";
    this.part("empty").hidden = this.items.length > 0;
    this.part("page").textContent = this.items.length || this.page ? `page ${this.page + 1}` : "";
    this.part("prev").disabled = this.page === 0;
    this.part("next").disabled = !more;
  }

  appendFinding(parent, f) {
    const open = this.expanded.has(f.id);
    const detailId = `finding-${this.uid}-${f.id}`;
    const tr = el("tr", { class: "finding", "data-finding-id": String(f.id), "data-state": f.effective_state });
    tr.append(el("td", { class: `sev-${f.severity}`, text: f.severity }), el("td", {}, el("code", { text: place(f) })),
      el("td", { class: "message", text: f.message || "" }), el("td", {}, this.sources(f)), el("td", {}, ...this.stateCell(f)));
    const state = this.baselineState(f);
    tr.append(el("td", { class: "col-baseline" }, state ? el("span", { class: `badge b-${state}`, title: BASELINE_TITLES[state], text: state }) : ""));
    const actions = el("td", { class: "row-actions" });
    const toggle = el("button", { type: "button", class: "fp-toggle", "aria-expanded": String(open), "aria-controls": detailId,
      "aria-label": `${open ? "Hide" : "Show"} details of finding ${f.id}`, text: open ? "Hide details" : "Details" });
    toggle.addEventListener("click", () => {
      if (this.expanded.has(f.id)) this.expanded.delete(f.id); else this.expanded.add(f.id);
      this.rerender(f.id, ".fp-toggle");
    });
    actions.append(toggle);
    if (mayTriage()) {
      for (const target of this.targets(f)) {
        const b = el("button", { type: "button", class: "triage", "data-target-state": target,
          "aria-label": `${TRIAGE[target].button} (finding ${f.id})`, text: TRIAGE[target].button });
        b.addEventListener("click", () => {
          this.triaging.set(f.id, target); this.expanded.add(f.id);
          this.rerender(f.id, ".triage-form textarea");
        });
        actions.append(b);
      }
    }
    tr.append(actions);
    parent.append(tr);
    if (open) parent.append(this.detailRow(f, detailId));
  }

  // What a person may set it to: an open finding can be suppressed; a suppressed one (or one whose
  // suppression lapsed) reopened or suppressed again (a new reason or expiry). Fixed is the scans'.
  targets(f) {
    if (f.state === "fixed") return [];
    if (f.state === "open") return ["false_positive", "accepted_risk"];
    return ["false_positive", "accepted_risk", "open"];
  }

  sources(f) {
    const wrap = el("span", { class: "sources" });
    const list = f.sources && f.sources.length ? f.sources : [{ tool: f.tool, rule_id: f.rule_id }];
    list.forEach((s, i) => {
      if (i) wrap.append(el("br"));
      const help = this.opts.help.get(ruleKey(s.tool, s.rule_id));
      const rule = help ? el("a", { href: help, target: "_blank", rel: "noopener noreferrer", title: visible(help), text: s.rule_id })
        : el("span", { class: "rule", text: s.rule_id });
      wrap.append(el("span", { class: "tool", text: s.tool }), el("span", { text: " " }), rule);
    });
    return wrap;
  }

  stateCell(f) {
    const out = [el("span", { class: `state st-${f.effective_state}`, text: STATE_LABELS[f.effective_state] || f.effective_state })];
    if (f.expired) out.push(el("small", { class: "expired", text: ` (${STATE_LABELS[f.state] || f.state} expired ${day(f.expires_at)})` }));
    else if (f.expires_at && (f.state === "false_positive" || f.state === "accepted_risk")) out.push(el("small", { text: ` until ${day(f.expires_at)}` }));
    return out;
  }

  detailRow(f, detailId) {
    const td = el("td", { colspan: String(COLUMNS) });
    const dl = el("dl", { class: "meta" });
    const add = (k, v) => { if (v !== null && v !== undefined && v !== "") dl.append(el("dt", { text: k }), el("dd", {}, v)); };
    add("finding", String(f.id)); add("fingerprint", f.fingerprint); add("CWE", f.cwe);
    add("first seen", scanLink(f.first_seen_test_id)); add("last seen", scanLink(f.last_seen_test_id));
    add("state", `${f.state}${f.expired ? " (expired: counts as open)" : ""}`);
    if (f.triage_reason) add("reason", multiline("span", f.triage_reason, { class: "multiline" }));
    add("owner", f.triage_owner); add("expires", f.expires_at); add("triaged by", f.triaged_by); add("triaged at", f.triaged_at);
    td.append(dl);
    const snippet = this.opts.snippets.get(f.fingerprint);
    if (snippet) td.append(multiline("pre", snippet, { class: "snippet", "aria-label": "code" }));
    const target = this.triaging.get(f.id);
    if (target && mayTriage()) td.append(this.triageForm(f, target));
    const status = el("p", { class: "row-message", role: "status", tabindex: "-1" });
    if (this.messages.has(f.id)) status.textContent = visible(this.messages.get(f.id));
    td.append(status);
    const history = this.histories.get(f.id);
    const button = el("button", { type: "button", class: "fp-history", "aria-expanded": String(history !== undefined),
      text: history !== undefined ? "Hide history" : "History" });
    button.addEventListener("click", () => this.toggleHistory(f.id));
    td.append(button);
    if (history !== undefined) td.append(this.historyList(history));
    return el("tr", { class: "finding-detail", id: detailId, "data-finding-id": String(f.id) }, td);
  }

  triageForm(f, target) {
    const form = el("form", { class: "triage-form", "aria-label": `${TRIAGE[target].submit}: finding ${f.id}` });
    form.append(el("h4", { text: `${TRIAGE[target].submit} (finding ${f.id})` }));
    const reason = el("textarea", { name: "reason", rows: "2", maxlength: "4000" });
    reason.required = target !== "open";
    form.append(el("label", {}, target === "open" ? "Reason (optional)" : "Reason", reason));
    if (target === "accepted_risk") {
      const owner = el("input", { name: "owner", maxlength: "255", autocomplete: "off", placeholder: "who answers for it" });
      owner.required = true;
      form.append(el("label", {}, "Owner", owner));
    }
    if (target !== "open") {
      const expires = el("input", { name: "expires", type: "date", min: tomorrow() });
      expires.required = target === "accepted_risk";
      form.append(el("label", {}, target === "accepted_risk" ? "Expires (00:00 UTC that day)" : "Expires (optional, 00:00 UTC)", expires));
    }
    const submit = el("button", { type: "submit", text: TRIAGE[target].submit });
    const cancel = el("button", { type: "button", class: "secondary", text: "Cancel" });
    const error = el("p", { class: "error form-error", role: "alert", hidden: "" });
    form.append(el("div", { class: "form-buttons" }, submit, cancel), error);
    const stop = () => { this.triaging.delete(f.id); this.rerender(f.id, `.triage[data-target-state="${target}"]`); };
    cancel.addEventListener("click", stop);
    form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") stop(); });
    form.addEventListener("submit", (ev) => { ev.preventDefault(); this.triage(f, target, form); });
    return form;
  }

  async triage(f, target, form) {
    const v = form.elements;
    const body = { state: target };
    if (v.reason.value.trim()) body.reason = v.reason.value.trim();
    if (v.owner && v.owner.value.trim()) body.owner = v.owner.value.trim();
    if (v.expires && v.expires.value) body.expires_at = `${v.expires.value}T00:00:00Z`;
    const error = form.querySelector(".form-error");
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true; error.hidden = true;
    try {
      const updated = await api("PATCH", `${FINDINGS}/${encodeURIComponent(f.id)}`, body);
      const at = this.items.findIndex((x) => x.id === f.id);
      if (at >= 0) this.items[at] = updated;
      this.triaging.delete(f.id);
      this.messages.set(f.id, `Finding ${f.id} is now ${STATE_LABELS[updated.state] || updated.state}`
        + (updated.expires_at ? ` until ${updated.expires_at}` : "") + (updated.triage_owner ? `, owner ${updated.triage_owner}` : "") + ".");
      await this.fetchHistory(f.id);
      if (this.closed) return;
      this.rerender(f.id, ".row-message");
    } catch (err) {
      if (this.closed) return;
      if (err.status === 403) {
        triageRefusal = { key: apiKey(), message: describe(err) };
        this.triaging.clear();
        this.showRefusal();
        this.renderRows();
        this.part("notice").focus();
        return;
      }
      error.textContent = describe(err); error.hidden = false; submit.disabled = false;
    }
  }

  showRefusal() {
    const notice = this.part("notice");
    const refused = !mayTriage();
    notice.hidden = !refused;
    notice.setAttribute("tabindex", "-1");
    notice.textContent = refused ? `This API key may not triage findings (${triageRefusal.message}). Triage needs a key with `
      + "the role triager or admin: enter one in the API key field." : "";
  }

  async fetchHistory(id) {
    try { this.histories.set(id, (await api("GET", `${FINDINGS}/${encodeURIComponent(id)}/history`)).items); }
    catch (err) { this.histories.set(id, err); }
  }

  async toggleHistory(id) {
    if (this.histories.has(id)) this.histories.delete(id); else await this.fetchHistory(id);
    if (!this.closed) this.rerender(id, ".fp-history");
  }

  historyList(history) {
    if (history instanceof Error) return el("p", { class: "error", text: describe(history) });
    if (!history.length) return el("p", { class: "note history", text: "No change of state yet." });
    const ol = el("ol", { class: "history", "aria-label": "History" });
    for (const e of history) {
      const text = `${e.at}  ${STATE_LABELS[e.from_state] || e.from_state} → ${STATE_LABELS[e.to_state] || e.to_state}  by ${e.actor}`
        + (e.scan_test_id ? ` (scan ${e.scan_test_id})` : "") + (e.reason ? ` — ${e.reason}` : "")
        + (e.owner ? `; owner ${e.owner}` : "") + (e.expires_at ? `; until ${e.expires_at}` : "");
      ol.append(el("li", { text }));
    }
    return ol;
  }

  // One finding's rows again, keeping the keyboard's place (focus goes to `focus` inside them).
  rerender(id, focus) {
    const f = this.items.find((x) => x.id === id);
    const row = this.table.querySelector(`tr.finding[data-finding-id="${CSS.escape(String(id))}"]`);
    if (!f || !row) return;
    const next = row.nextElementSibling;
    if (next && next.classList.contains("finding-detail")) next.remove();
    const fresh = document.createDocumentFragment();
    this.appendFinding(fresh, f);
    const nodes = [...fresh.childNodes];
    row.replaceWith(fresh);
    if (focus) {
      for (const node of nodes) {
        const target = node.matches(focus) ? node : node.querySelector(focus);
        if (target) { target.focus(); break; }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One component: its scans with their policy results and a small trend, its open findings now,
// and its findings.
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

class ComponentView {
  constructor(workspace, component) {
    this.workspace = workspace; this.component = component; this.cursor = null; this.scans = [];
    this.closed = false; this.panel = null; this.seq = 0;
  }

  open() {
    $("#component-name").textContent = visible(`${this.workspace} / ${this.component}`);
    for (const sel of ["#component-scans tbody", "#component-open tbody tr", "#component-trend .trend-chart"]) $(sel).replaceChildren();
    $("#component-error").hidden = true; $("#component-trend").hidden = true; $("#component-scans-empty").hidden = true;
    $("#component-more").hidden = true;
    $("#component-more").onclick = () => this.loadScans(true);
    this.panel = new FindingsPanel($("#component-findings"), { workspace: this.workspace, component: this.component,
      scan: null, baseline: null, help: new Map(), snippets: new Map(), state: "open" });
    this.panel.load();
    this.loadOpenCounts();
    this.loadScans(false);
  }

  close() { this.closed = true; if (this.panel) this.panel.close(); }

  error(err) { $("#component-error").textContent = describe(err); $("#component-error").hidden = false; }

  // Open findings by severity: one bounded listing per severity (the API has no count).
  async loadOpenCounts() {
    const row = $("#component-open tbody tr");
    row.replaceChildren(...SEVERITIES.map(() => el("td", { class: "num", text: "…" })));
    const counts = await Promise.all(SEVERITIES.map(async (severity) => {
      const params = new URLSearchParams({ workspace_id: this.workspace, component_id: this.component, state: "open",
        severity, limit: String(COUNT_LIMIT) });
      try {
        const page = await api("GET", `${FINDINGS}?${params}`);
        return `${page.items.length}${page.next_cursor ? "+" : ""}`;
      } catch (err) { return err; }
    }));
    if (this.closed) return;
    row.replaceChildren();
    counts.forEach((n, i) => {
      const severity = SEVERITIES[i];
      if (n instanceof Error) { row.append(el("td", { class: "num", title: visible(n.message), text: "?" })); this.error(n); return; }
      const td = el("td", { class: "num", "data-severity": severity });
      if (n === "0") td.append(el("span", { text: "0" }));
      else {
        const b = el("button", { type: "button", class: `link sev-${severity}`, "aria-label": `Show the ${n} open ${severity} findings`, text: n });
        b.addEventListener("click", () => { this.panel.setFilter({ severity, state: "open" }); this.panel.part("filter").elements.severity.focus(); });
        td.append(b);
      }
      row.append(td);
    });
  }

  async loadScans(more) {
    const seq = ++this.seq;
    const params = new URLSearchParams({ workspace_id: this.workspace, component_id: this.component, limit: "50" });
    if (more && this.cursor) params.set("cursor", this.cursor);
    try {
      const page = await api("GET", `${API}?${params}`);
      if (this.closed || seq !== this.seq) return;
      if (!more) { this.scans = []; $("#component-scans tbody").replaceChildren(); }
      this.scans.push(...page.items);
      for (const s of page.items) $("#component-scans tbody").append(this.scanRow(s));
      this.cursor = page.next_cursor;
      $("#component-more").hidden = !this.cursor;
      $("#component-scans-empty").hidden = this.scans.length > 0;
      this.renderTrend();
    } catch (err) { if (!this.closed) this.error(err); }
  }

  scanRow(s) {
    const sev = (s.summary && s.summary.by_severity) || {};
    const diff = s.summary && s.summary.diff;
    const policy = s.policy ? (s.policy.passed ? "passed" : "failed") : "—";
    const violations = (s.policy && s.policy.violations) || [];
    const commit = s.resolved_commit || s.commit;
    const tr = el("tr", { "data-test-id": s.test_id },
      el("td", {}, scanLink(s.test_id)),
      el("td", {}, el("span", { class: `badge s-${s.status}`, text: s.status })),
      el("td", { class: policy, title: visible(violations.map((v) => v.message).join("\n")),
        text: policy === "failed" && violations.length ? `failed (${violations.length} rule${violations.length > 1 ? "s" : ""})` : policy }),
      el("td", { text: [s.branch, commit && String(commit).slice(0, 7)].filter(Boolean).join(" @ ") }),
      el("td", { class: "num", text: diff ? sumOf(diff.new) : "" }),
      el("td", { class: "num", text: diff ? sumOf(diff.fixed) : "" }));
    for (const k of ["critical", "high", "medium", "low"]) tr.append(el("td", { class: "num", text: s.summary ? (sev[k] || 0) : "" }));
    tr.append(el("td", { text: s.created_at || "" }));
    return tr;
  }

  // A small stacked bar per scan (oldest on the left) of the findings its summary counts.
  renderTrend() {
    const points = this.scans.filter((s) => s.summary && s.summary.by_severity).reverse();
    const figure = $("#component-trend");
    const box = figure.querySelector(".trend-chart");
    box.replaceChildren();
    figure.hidden = points.length === 0;
    if (!points.length) return;
    const H = 80, W = 16, GAP = 5;
    const max = Math.max(1, ...points.map((s) => sumOf(s.summary.by_severity)));
    const chart = svgEl("svg", { width: points.length * (W + GAP), height: H, viewBox: `0 0 ${points.length * (W + GAP)} ${H}`,
      role: "img", "aria-label": `Findings of the last ${points.length} scans by severity, oldest first` });
    points.forEach((s, i) => {
      const by = s.summary.by_severity;
      const g = svgEl("g", { "data-test-id": s.test_id });
      const title = svgEl("title");
      title.textContent = visible(`${s.test_id} (${s.created_at || ""}): ${countsText(by)}`);
      g.append(title);
      let y = H;
      for (const severity of [...SEVERITIES].reverse()) {
        const n = Number(by[severity]) || 0;
        if (!n) continue;
        const h = (n / max) * (H - 2);
        y -= h;
        g.append(svgEl("rect", { x: i * (W + GAP), y: y.toFixed(2), width: W, height: h.toFixed(2), class: `bar-${severity}` }));
      }
      chart.append(g);
    });
    box.append(chart);
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
