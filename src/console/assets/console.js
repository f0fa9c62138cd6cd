// prizewheel console: one hand-written ES module, no framework, no build step.
//
// The pages are static shells; this module fills them from the public API,
// called with the token the user pasted (kept in this tab's sessionStorage,
// sent as `Authorization: Bearer`). The server never decodes the token for
// the console: the roles shown are read from the token's payload here, and
// the API decides what the token may see (401 refused, 403 lacks the role).
// Text from the API is only ever set as text (textContent), never as markup.

const TOKEN_KEY = "prizewheel.console.token";
const CAMPAIGN_ID = /^[a-z0-9-]{1,64}$/;
const SVG_NS = "http://www.w3.org/2000/svg";
const REFRESH_MS = 15000;
const BURNDOWN_MS = 5000;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The token's payload (its claims), decoded here without checking anything. */
function claimsOf(token) {
  const parts = (token || "").split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

function rolesOf(claims) {
  const roles = claims && Array.isArray(claims.roles) ? claims.roles : [];
  return roles.filter((r) => typeof r === "string");
}

/** GET `path` of the API with the token: `{status, body, code, detail}`. */
function api(path, token = storedToken()) {
  return call("GET", path, { token });
}

/**
 * `method` `path` of the API with the token, and `body` (a string or a Blob)
 * with `type` and any other `headers`: `{status, body, code, detail, errors,
 * headers}` (`errors`: a problem's list of YAML problems).
 */
async function call(method, path, { token = storedToken(), body, type, headers = {} } = {}) {
  const sent = { Authorization: `Bearer ${token}`, Accept: "application/json", ...headers };
  if (type) sent["Content-Type"] = type;
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body, cache: "no-store", credentials: "omit" });
  } catch {
    return { status: 0, body: null, code: null, detail: "the service could not be reached", errors: [], headers: new Headers() };
  }
  let parsed = null;
  try {
    parsed = await response.json();
  } catch {
    parsed = null;
  }
  const problem = parsed && typeof parsed === "object" ? parsed : {};
  return {
    status: response.status,
    body: parsed,
    code: problem.code || null,
    detail: problem.detail || problem.title || response.statusText || `status ${response.status}`,
    errors: Array.isArray(problem.errors) ? problem.errors : [],
    headers: response.headers,
  };
}

/** Shows `parts` (text and elements) in the page's message box. */
function say(kind, ...parts) {
  const box = $("message");
  if (!box) return;
  box.replaceChildren(...parts);
  box.className = `message ${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
}

function quiet() {
  const box = $("message");
  if (box) {
    box.replaceChildren();
    box.className = "message";
  }
}

function signInLink(text = "Sign in") {
  return el("a", { href: "/console/" }, text);
}

/** The message for an answer that is not 200, by what the page needed. */
function explain(r, role, what) {
  if (r.status === 401 || r.status === 400) {
    return say("error", `The service refused your token (${r.detail}). `, signInLink("Sign in again"), ".");
  }
  if (r.status === 403) {
    return say(
      "error",
      `Your token has no ${role} role: ${what} needs a token with the ${role} role. `,
      signInLink("Use another token"),
      ".",
    );
  }
  if (r.status === 404) {
    return say("error", `Not found: ${r.detail}.`);
  }
  if (r.status === 0) {
    return say("error", `Cannot load ${what}: ${r.detail}. Try again shortly.`);
  }
  return say("error", `Cannot load ${what}: the service answered ${r.status} (${r.code || "no code"}): ${r.detail}.`);
}

/** The token stored in this tab, or a message asking to sign in. */
function requireToken() {
  const token = storedToken();
  if (!token) {
    say("info", "You are not signed in. ", signInLink(), " with a token first.");
    return null;
  }
  return token;
}

function showWho() {
  const token = storedToken();
  const who = $("who");
  if (!who) return;
  if (!token) {
    who.hidden = true;
    return;
  }
  const claims = claimsOf(token);
  const roles = rolesOf(claims);
  const sub = claims && typeof claims.sub === "string" ? claims.sub : "unknown user";
  $("who-text").textContent = `Signed in as ${sub} (${roles.length ? roles.join(", ") : "no roles"})`;
  who.hidden = false;
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.assign("/console/");
}

// ------------------------------------------------------------- formatting ---

function when(text, timeZone) {
  const t = new Date(text);
  if (!text || Number.isNaN(t.getTime())) return text || "";
  try {
    return new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "short", timeZone }).format(t);
  } catch {
    return t.toISOString();
  }
}

function windowText(c) {
  const tz = c.timezone || "UTC";
  return `${when(c.starts_at, tz)} – ${when(c.ends_at, tz)} (${tz})`;
}

function percent(x) {
  if (typeof x !== "number") return "";
  return new Intl.NumberFormat("en-GB", { style: "percent", maximumSignificantDigits: 3 }).format(x);
}

function count(n) {
  return typeof n === "number" ? new Intl.NumberFormat("en-GB").format(n) : String(n ?? "");
}

function statusPill(status) {
  return el("span", { class: `status status-${status}` }, status);
}

/** A bar of `remaining` out of `stock` (SVG: no inline style needed). */
function stockBar(remaining, stock, label) {
  const share = stock > 0 ? Math.max(0, Math.min(1, remaining / stock)) : 0;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "stock-bar");
  svg.setAttribute("viewBox", "0 0 100 10");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const empty = document.createElementNS(SVG_NS, "rect");
  empty.setAttribute("class", "empty");
  empty.setAttribute("width", "100");
  empty.setAttribute("height", "10");
  const left = document.createElementNS(SVG_NS, "rect");
  left.setAttribute("class", share === 0 ? "left out" : share < 0.2 ? "left low" : "left");
  left.setAttribute("width", (share * 100).toFixed(2));
  left.setAttribute("height", "10");
  svg.append(empty, left);
  return svg;
}

/** "7 of 10 left" with a bar, or "unlimited". */
function stockCell(prize) {
  if (prize.stock === null || prize.stock === undefined) {
    return [el("span", { class: "count" }, "unlimited")];
  }
  const text = `${count(prize.remaining)} of ${count(prize.stock)} left`;
  return [stockBar(prize.remaining, prize.stock, `${prize.name}: ${text}`), el("span", { class: "count" }, text)];
}

function budgetText(budget) {
  return budget ? `${budget.left} ${budget.currency}` : "no budget";
}

function campaignIdFromPath(prefix) {
  const rest = location.pathname.slice(prefix.length).replace(/\/+$/, "");
  let id = rest;
  try {
    id = decodeURIComponent(rest);
  } catch {
    return null;
  }
  return CAMPAIGN_ID.test(id) ? id : null;
}

function everyFewSeconds(load, ms = REFRESH_MS) {
  setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, ms);
}

/**
 * An image of the API as a `data:` URL (the CSP allows `img-src 'self' data:`;
 * the token travels in a header, so the image cannot be fetched by its URL):
 * `{status, url}`.
 */
async function imageData(path) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${storedToken()}` },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    return { status: 0, url: null };
  }
  if (!response.ok) return { status: response.status, url: null };
  const blob = await response.blob();
  const url = await new Promise((resolve) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => resolve(null);
    reader.readAsDataURL(blob);
  });
  return { status: response.status, url };
}

/** The campaign page's burn-down: the chart and its figures in words. */
async function loadBurndown(id) {
  const path = `/v1/admin/campaigns/${encodeURIComponent(id)}/burndown`;
  const [figures, image] = await Promise.all([api(path), imageData(`${path}.svg`)]);
  if (figures.status !== 200) {
    $("burndown-figures").replaceChildren(el("li", {}, `Burn-down not available: ${figures.status} (${figures.code || "no code"}): ${figures.detail}`));
    return;
  }
  const b = figures.body;
  const last = (points) => (points.length ? points[points.length - 1].units : null);
  $("burndown-figures").replaceChildren(
    ...b.prizes.map((p) => {
      const released = p.released.length ? `, ${count(releasedNow(p.released, b.as_of))} released now` : "";
      const projected = last(p.projected);
      const end = projected === null ? "" : `; projected by the end: ${count(projected)} of ${count(p.stock)}`;
      return el("li", { "data-prize": p.id }, `${p.name}: ${count(last(p.settled) ?? 0)} of ${count(p.stock)} settled${released}${end}`);
    }),
  );
  $("burndown-as-of").textContent = `As of ${when(b.as_of, "UTC")} UTC; projection of ${count(b.projection.attempts)} spin attempts${b.projection.scaled ? " (scaled down: it undercounts)" : ""}.`;
  if (image.url) {
    const img = $("burndown-img");
    img.src = image.url;
    img.alt = `Burn-down chart of ${b.name}: ${b.prizes.map((p) => `${p.name} ${last(p.settled) ?? 0} of ${p.stock} settled`).join("; ") || "no stock-bounded prize"}`;
  }
}

/** Units released by `at` on a release line. */
function releasedNow(points, at) {
  const t = new Date(at).getTime();
  let units = 0;
  for (const p of points) {
    if (new Date(p.at).getTime() <= t) units = p.units;
  }
  return units;
}

// ---------------------------------------------------------------- sign in ---

function describe(token, marketing) {
  const claims = claimsOf(token) || {};
  const roles = rolesOf(claims);
  $("token-sub").textContent = typeof claims.sub === "string" ? claims.sub : "(not readable)";
  $("token-roles").textContent = roles.length ? roles.join(", ") : "none";
  $("token-exp").textContent =
    typeof claims.exp === "number" ? new Date(claims.exp * 1000).toISOString() : "(not readable)";
  $("to-campaigns").hidden = !marketing;
  $("finance-form").hidden = !roles.includes("finance");
  $("signed-in").hidden = false;
}

async function signInPage() {
  const form = $("sign-in-form");
  const input = $("token");
  const existing = storedToken();
  if (existing) describe(existing, rolesOf(claimsOf(existing)).includes("marketing"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      say("error", "Paste a token first.");
      input.focus();
      return;
    }
    if (/\s/.test(token)) {
      say("error", "That is not a token: a token has no spaces or line breaks inside.");
      input.focus();
      return;
    }
    say("info", "Checking the token with the service…");
    // Any role-gated endpoint tells a refused token (401) from one that
    // lacks the role (403); this one also tells whether it has `marketing`.
    const r = await api("/v1/admin/campaigns", token);
    if (r.status !== 200 && r.status !== 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("signed-in").hidden = true;
      showWho();
      if (r.status === 401 || r.status === 400) {
        say("error", `The service refused this token: ${r.detail}`);
      } else {
        explain(r, "marketing", "checking the token");
      }
      input.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = "";
    showWho();
    const marketing = r.status === 200;
    if (marketing) {
      location.assign("/console/campaigns");
      return;
    }
    describe(token, false);
    say("info", "Signed in. This token has no marketing role: open a campaign's finance page by its id.");
  });

  $("finance-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("finance-id").value.trim();
    if (!CAMPAIGN_ID.test(id)) {
      say("error", "A campaign id is 1 to 64 of a-z, 0-9 and -.");
      $("finance-id").focus();
      return;
    }
    location.assign(`/console/finance/${encodeURIComponent(id)}`);
  });
}

// -------------------------------------------------------------- campaigns ---

function campaignRow(c) {
  const stock = el("ul", { class: "stock" });
  for (const p of c.prizes.filter((p) => !p.retired)) {
    stock.append(el("li", {}, el("span", { class: "prize-name" }, p.name), ...stockCell(p)));
  }
  const href = `/console/campaigns/${encodeURIComponent(c.id)}`;
  return el(
    "tr",
    { "data-campaign": c.id },
    el("td", {}, el("a", { href }, c.name || c.id), el("br"), el("code", {}, c.id)),
    el("td", {}, statusPill(c.status)),
    el("td", { class: "window" }, when(c.starts_at, c.timezone), el("br"), `to ${when(c.ends_at, c.timezone)}`, el("br"), `(${c.timezone})`),
    el("td", { class: "num" }, `${count(c.spins_last_minute)} / ${count(c.spins_last_hour)}`),
    el("td", {}, stock),
    el("td", { class: "num" }, budgetText(c.budget)),
    el(
      "td",
      {},
      el("a", { href: `/console/finance/${encodeURIComponent(c.id)}`, "aria-label": `Finance of ${c.name || c.id}` }, "Finance"),
    ),
  );
}

async function campaignsPage() {
  if (!requireToken()) return;
  const load = async () => {
    const r = await api("/v1/admin/campaigns");
    if (r.status !== 200) {
      $("list").hidden = true;
      return explain(r, "marketing", "the campaigns list");
    }
    const list = r.body;
    $("as-of").textContent = when(list.as_of, "UTC") + " UTC";
    const rows = list.campaigns.map(campaignRow);
    if (rows.length === 0) {
      rows.push(el("tr", {}, el("td", { colspan: 7 }, "No campaign yet: apply one with `prizewheel campaign apply`.")));
    }
    $("campaigns").tBodies[0].replaceChildren(...rows);
    const missing = $("not-in-redis");
    missing.hidden = list.not_in_redis.length === 0;
    missing.textContent = `Recorded in the ledger but not in Redis (apply them again): ${list.not_in_redis.join(", ")}`;
    $("list").hidden = false;
    quiet();
  };
  $("refresh").addEventListener("click", load);
  await load();
  everyFewSeconds(load);
}

// --------------------------------------------------------------- campaign ---

function availability(p) {
  if (p.retired) return el("span", { class: "no" }, "retired");
  if (p.available) return el("span", { class: "yes" }, "yes");
  const why = { no_stock: "no stock left", not_released: "waiting for its next release", over_budget: "over the budget left" };
  const text = why[p.held] || p.held || "no";
  const next = p.next_release_at ? ` (next unit ${when(p.next_release_at, "UTC")} UTC)` : "";
  return el("span", { class: "no" }, `no: ${text}${next}`);
}

async function codesCell(id, prize) {
  const cell = el("td", { class: "num" }, "…");
  const r = await api(`/v1/admin/campaigns/${encodeURIComponent(id)}/prizes/${encodeURIComponent(prize.id)}/codes`);
  if (r.status === 200) {
    const c = r.body;
    cell.textContent = `${count(c.available)} of ${count(c.loaded)} loaded`;
    cell.title = `awarded ${c.awarded}, withdrawn ${c.withdrawn}`;
  } else {
    cell.textContent = `unknown (${r.status})`;
  }
  return cell;
}

async function prizeRow(id, p) {
  const codes = p.codes ? await codesCell(id, p) : el("td", { class: "num" }, "—");
  return el(
    "tr",
    { "data-prize": p.id },
    el("th", { scope: "row" }, p.name, el("br"), el("code", {}, p.id)),
    el("td", {}, el("div", { class: "stock" }, ...stockCell(p))),
    el("td", { class: "num" }, count(p.awarded)),
    el("td", { class: "num" }, percent(p.odds)),
    el("td", {}, availability(p)),
    codes,
  );
}

async function campaignPage() {
  const id = campaignIdFromPath("/console/campaigns/");
  if (!id) {
    say("error", "This is not a campaign's address: a campaign id is 1 to 64 of a-z, 0-9 and -.");
    return;
  }
  if (!requireToken()) return;
  $("finance-link").href = `/console/finance/${encodeURIComponent(id)}`;
  $("edit-link").href = `/console/campaigns/${encodeURIComponent(id)}/edit`;
  let uploadsBuilt = false;
  const load = async () => {
    const path = encodeURIComponent(id);
    const [live, view] = await Promise.all([api(`/v1/admin/campaigns/${path}`), api(`/v1/campaigns/${path}`)]);
    if (live.status !== 200) {
      $("campaign").hidden = true;
      return explain(live, "marketing", "this campaign");
    }
    const c = live.body;
    const shopper = view.status === 200 ? view.body : null;
    const name = shopper ? shopper.name : id;
    $("title").textContent = name;
    document.title = `${name} · prizewheel console`;
    $("campaign-id").textContent = id;
    $("campaign-status").replaceChildren(shopper ? statusPill(shopper.status) : "unknown");
    $("campaign-window").textContent = shopper ? windowText(shopper) : "unknown";
    $("campaign-version").textContent = String(c.version);
    $("campaign-as-of").textContent = `${when(c.as_of, "UTC")} UTC`;
    const rows = await Promise.all(c.prizes.map((p) => prizeRow(id, p)));
    $("prizes").tBodies[0].replaceChildren(...rows);
    $("no-budget").hidden = Boolean(c.budget);
    $("budget").hidden = !c.budget;
    if (c.budget) {
      $("budget-amount").textContent = `${c.budget.amount} ${c.budget.currency}`;
      $("budget-spent").textContent = `${c.budget.spent} ${c.budget.currency}`;
      $("budget-left").textContent = `${c.budget.left} ${c.budget.currency}`;
    }
    if (!uploadsBuilt) {
      uploadsBuilt = true;
      const codePrizes = c.prizes.filter((p) => p.codes && !p.retired);
      $("code-uploads").replaceChildren(...codePrizes.map((p) => codeUploadForm(id, p, load)));
      $("code-uploads-part").hidden = codePrizes.length === 0;
    }
    $("campaign").hidden = false;
    quiet();
  };
  $("refresh").addEventListener("click", () => {
    load();
    loadBurndown(id);
  });
  await load();
  await loadBurndown(id);
  everyFewSeconds(load);
  everyFewSeconds(() => loadBurndown(id), BURNDOWN_MS);
}

/** The form that uploads codes for code prize `p` (typed, or from a file). */
function codeUploadForm(id, p, reload) {
  const key = p.id.replace(/[^a-zA-Z0-9_-]/g, "_");
  const text = el("textarea", { id: `codes-text-${key}`, rows: 4, spellcheck: "false" });
  const file = el("input", { id: `codes-file-${key}`, type: "file", accept: ".txt,.csv,text/plain,text/csv" });
  const result = el("p", { id: `codes-result-${key}`, class: "code-upload-result", role: "status", "aria-live": "polite" });
  const button = el("button", { type: "submit", id: `codes-upload-${key}` }, `Upload codes for ${p.name}`);
  const form = el(
    "form",
    { class: "code-upload", "data-prize": p.id },
    el(
      "fieldset",
      {},
      el("legend", {}, p.name, " ", el("code", {}, p.id)),
      el("label", { for: text.id }, "Codes to add"),
      text,
      el("label", { for: file.id }, "…or a file of codes (.txt or .csv)"),
      file,
      button,
      result,
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = file.files && file.files[0];
    const body = chosen || text.value;
    if (!chosen && !text.value.trim()) {
      result.className = "code-upload-result no";
      result.textContent = "Type some codes or choose a file first.";
      text.focus();
      return;
    }
    const type = chosen && /\.csv$/i.test(chosen.name) ? "text/csv" : "text/plain";
    button.disabled = true;
    result.className = "code-upload-result";
    result.textContent = "Uploading…";
    const path = `/v1/admin/campaigns/${encodeURIComponent(id)}/prizes/${encodeURIComponent(p.id)}/codes`;
    const r = await call("POST", path, { body, type });
    button.disabled = false;
    if (r.status !== 200) {
      result.className = "code-upload-result no";
      result.textContent = `Not uploaded: the service answered ${r.status} (${r.code || "no code"}): ${r.detail}`;
      return;
    }
    const a = r.body;
    const invalid = (a.invalid || [])
      .slice(0, 5)
      .map((i) => `line ${i.line}: ${i.message}`)
      .join("; ");
    result.className = "code-upload-result yes";
    result.textContent =
      `Added ${count(a.added)}, ${count(a.duplicates)} already loaded, ${count(a.invalid_count)} invalid` +
      `${invalid ? ` (${invalid})` : ""}; ${count(a.available)} available now.`;
    text.value = "";
    file.value = "";
    await reload();
  });
  return form;
}

// ------------------------------------------------------------------- edit ---

const CHECK_AFTER_MS = 400;
const PAUSED_LINE = /^paused:[ \t]*(true|false)[ \t]*(#.*)?$/m;

/** Whether the YAML text pauses the campaign (a top-level `paused: true`). */
function pausedIn(yaml) {
  const m = PAUSED_LINE.exec(yaml);
  return Boolean(m && m[1] === "true");
}

/** `yaml` with its top-level `paused:` set to `paused` (added after `id:` if absent). */
function withPaused(yaml, paused) {
  const line = `paused: ${paused}`;
  if (PAUSED_LINE.test(yaml)) return yaml.replace(PAUSED_LINE, (_, _v, comment) => (comment ? `${line} ${comment}` : line));
  const id = /^id:.*$/m.exec(yaml);
  if (!id) return `${line}\n${yaml}`;
  const at = id.index + id[0].length;
  return `${yaml.slice(0, at)}\n${line}${yaml.slice(at)}`;
}

/** The offsets of line `n` (1-based) of `text`: [start, end). */
function lineRange(text, n) {
  let start = 0;
  for (let i = 1; i < n; i++) {
    const next = text.indexOf("\n", start);
    if (next < 0) return [text.length, text.length];
    start = next + 1;
  }
  const end = text.indexOf("\n", start);
  return [start, end < 0 ? text.length : end];
}

function changeText(c) {
  const from = c.from === null || c.from === undefined ? "" : ` from ${c.from}`;
  const to = c.to === null || c.to === undefined ? "" : ` to ${c.to}`;
  const note = c.note ? ` (${c.note})` : "";
  return `${c.action} ${c.path}${from}${to}${note}`;
}

async function editPage() {
  const m = /^\/console\/campaigns\/([^/]+)\/edit\/?$/.exec(location.pathname);
  let id = null;
  try {
    id = m ? decodeURIComponent(m[1]) : null;
  } catch {
    id = null;
  }
  if (!id || !CAMPAIGN_ID.test(id)) {
    say("error", "This is not a campaign's address: a campaign id is 1 to 64 of a-z, 0-9 and -.");
    return;
  }
  if (!requireToken()) return;
  const path = `/v1/admin/campaigns/${encodeURIComponent(id)}`;
  $("campaign-link").href = `/console/campaigns/${encodeURIComponent(id)}`;
  $("campaign-link").textContent = id;
  $("title").textContent = `Edit ${id}`;
  const area = $("yaml");
  const gutter = $("gutter");
  const applyButton = $("apply");
  // The text last planned, the plan's guard (the live config hash it was
  // planned against, from its ETag), and a counter that drops stale answers.
  let planned = null;
  let guard = null;
  let asked = 0;
  let timer = null;
  let problems = [];
  let drawn = "";

  const drawGutter = () => {
    const lines = area.value.split("\n").length;
    // Rebuilt only when the count of lines or the problems change.
    const key = `${lines}:${problems.map((p) => p.line).join(",")}`;
    if (key === drawn) {
      gutter.scrollTop = area.scrollTop;
      return;
    }
    drawn = key;
    const bad = new Map();
    for (const p of problems) {
      const list = bad.get(p.line) || [];
      list.push(p);
      bad.set(p.line, list);
    }
    const rows = [];
    for (let n = 1; n <= lines; n++) {
      const here = bad.get(n);
      rows.push(
        el(
          "div",
          { class: here ? "line bad" : "line", "data-line": n, title: here ? here.map((p) => p.message).join("\n") : null },
          String(n),
        ),
      );
    }
    gutter.replaceChildren(...rows);
    gutter.scrollTop = area.scrollTop;
  };

  const goToLine = (line) => {
    const [start, end] = lineRange(area.value, line);
    area.focus();
    area.setSelectionRange(start, end);
    // Scroll the line into view: rows are of equal height in a wrap="off" area.
    const rowHeight = area.scrollHeight / Math.max(1, area.value.split("\n").length);
    area.scrollTop = Math.max(0, (line - 3) * rowHeight);
    gutter.scrollTop = area.scrollTop;
  };

  const status = (kind, text) => {
    const box = $("yaml-status");
    box.className = `yaml-status ${kind}`;
    box.textContent = text;
  };

  const showProblems = (list) => {
    problems = list;
    $("yaml-problems").replaceChildren(
      ...list.map((p) => {
        const b = el(
          "button",
          { type: "button", "data-line": p.line, "data-column": p.column },
          `${p.line}:${p.column}: ${p.message}`,
        );
        b.addEventListener("click", () => goToLine(p.line));
        return el("li", {}, b);
      }),
    );
    drawGutter();
  };

  const showPlan = (plan) => {
    $("plan-summary").textContent = plan.unchanged
      ? "Unchanged: this is the live config; applying it changes nothing."
      : `${plan.changes.length} change${plan.changes.length === 1 ? "" : "s"} against live version ${plan.live_version ?? "none"}:`;
    $("plan-changes").replaceChildren(...plan.changes.map((c) => el("li", { "data-path": c.path }, changeText(c))));
    $("plan-warnings").replaceChildren(...plan.warnings.map((w) => el("li", {}, `Warning: ${w}`)));
  };

  const clearPlan = (text) => {
    $("plan-summary").textContent = text;
    $("plan-changes").replaceChildren();
    $("plan-warnings").replaceChildren();
  };

  const updateButtons = () => {
    const paused = pausedIn(area.value);
    $("toggle-pause").textContent = paused ? "Resume the campaign" : "Pause the campaign";
    const ready = planned !== null && planned === area.value && guard !== null;
    applyButton.disabled = !ready;
    $("apply-note").textContent = ready ? "Applies the change planned above." : "Apply is enabled once the YAML is valid and planned.";
  };

  const check = async () => {
    const text = area.value;
    const mine = ++asked;
    status("", "Checking…");
    const r = await call("POST", `${path}/plan`, { body: text, type: "application/yaml" });
    if (mine !== asked) return; // a newer check is on its way
    if (r.status === 200) {
      planned = text;
      guard = r.headers.get("ETag");
      showProblems([]);
      showPlan(r.body);
      status("ok", "Valid YAML: the plan below says what applying it changes.");
    } else {
      planned = null;
      guard = null;
      if (r.status === 422 && r.errors.length) {
        showProblems(r.errors);
        status("bad", `${r.detail}: see the marked lines.`);
      } else if (r.status === 422) {
        showProblems([]);
        status("bad", r.detail);
      } else {
        showProblems([]);
        status("bad", `Could not check the YAML: the service answered ${r.status} (${r.code || "no code"}): ${r.detail}`);
        if (r.status === 401 || r.status === 403) explain(r, "marketing", "editing a campaign");
      }
      clearPlan("No plan: the YAML must be valid first.");
    }
    updateButtons();
  };

  const edited = () => {
    planned = null;
    drawGutter();
    updateButtons();
    clearTimeout(timer);
    timer = setTimeout(check, CHECK_AFTER_MS);
  };

  const loadLive = async () => {
    const r = await api(path);
    if (r.status !== 200) {
      $("edit").hidden = true;
      explain(r, "marketing", "editing this campaign");
      return false;
    }
    $("live-version").textContent = String(r.body.version);
    $("live-hash").textContent = r.body.config_hash;
    area.value = r.body.yaml;
    $("edit").hidden = false;
    edited();
    return true;
  };

  area.addEventListener("input", edited);
  area.addEventListener("scroll", () => {
    gutter.scrollTop = area.scrollTop;
  });
  $("toggle-pause").addEventListener("click", () => {
    area.value = withPaused(area.value, !pausedIn(area.value));
    edited();
    clearTimeout(timer);
    check();
  });
  $("reload-live").addEventListener("click", async () => {
    $("conflict").hidden = true;
    if (await loadLive()) say("info", "Loaded the live YAML.");
  });
  applyButton.addEventListener("click", async () => {
    if (planned === null || planned !== area.value || !guard) return;
    applyButton.disabled = true;
    $("conflict").hidden = true;
    const r = await call("PUT", path, { body: planned, type: "application/yaml", headers: { "If-Match": guard } });
    if (r.status === 200) {
      say("info", `Applied: version ${r.body.version}${r.body.changed ? "" : " (nothing changed)"}.`);
      await loadLive();
      return;
    }
    if (r.status === 409 && r.code === "apply_conflict") {
      const box = $("conflict");
      box.replaceChildren(
        el("strong", {}, "Not applied: someone changed this campaign after your plan. "),
        "Nothing was overwritten. Your edit is still here and was planned again against the new live version below; " +
          "review that plan before applying, or load the live YAML. ",
        el("span", { class: "meta" }, `(${r.detail})`),
      );
      box.hidden = false;
      // Show what is live now, and plan the user's text against it.
      const live = await api(path);
      if (live.status === 200) {
        $("live-version").textContent = String(live.body.version);
        $("live-hash").textContent = live.body.config_hash;
      }
      await check();
      return;
    }
    if (r.status === 422 && r.errors.length) showProblems(r.errors);
    say("error", `Not applied: the service answered ${r.status} (${r.code || "no code"}): ${r.detail}`);
    updateButtons();
  });
  await loadLive();
}

// ---------------------------------------------------------------- finance ---

async function financePage() {
  const id = campaignIdFromPath("/console/finance/");
  if (!id) {
    say("error", "This is not a campaign's address: a campaign id is 1 to 64 of a-z, 0-9 and -.");
    return;
  }
  $("title").textContent = `Finance: ${id}`;
  if (!requireToken()) return;
  const r = await api(`/v1/finance/campaigns/${encodeURIComponent(id)}/summary`);
  if (r.status !== 200) {
    $("finance").hidden = true;
    return explain(r, "finance", "the finance page");
  }
  const s = r.body;
  $("reconcile-status").replaceChildren(
    s.ok ? el("span", { class: "yes" }, "Redis and the ledger agree") : el("span", { class: "no" }, "problems found"),
  );
  $("settlement").textContent = s.settlement_behind
    ? `behind: oldest unsettled draw ${count(s.oldest_unsettled_age_ms)} ms old`
    : `up to date (${count(s.pending)} pending)`;
  const b = s.budget || {};
  $("finance-budget").textContent = b.amount ? `${b.left} ${b.currency} of ${b.amount}` : "no budget";
  $("problems").replaceChildren(...(s.problems || []).map((p) => el("li", {}, p)));
  const rows = s.prizes.map((p) =>
    el(
      "tr",
      { "data-prize": p.prize_id },
      el("th", { scope: "row" }, el("code", {}, p.prize_id)),
      el("td", { class: "num" }, count(p.awarded)),
      el("td", { class: "num" }, count(p.settled)),
      el("td", { class: "num" }, `${p.settled_amount} ${p.currency || ""}`.trim()),
      el("td", { class: "num" }, count(p.in_flight)),
      el("td", { class: "num" }, count(p.dead_lettered)),
      el("td", {}, p.ok ? el("span", { class: "yes" }, "yes") : el("span", { class: "no" }, "no")),
    ),
  );
  $("summary").tBodies[0].replaceChildren(...rows);
  $("finance").hidden = false;
  quiet();
  rewardsPart(id);
}

/** `datetime-local` text (read as UTC) as RFC 3339, or null. */
function utcOf(local) {
  if (!local) return null;
  const withSeconds = local.length === 16 ? `${local}:00` : local;
  const t = new Date(`${withSeconds}Z`);
  return Number.isNaN(t.getTime()) ? null : t.toISOString().replace(".000Z", "Z");
}

/** The rewards table: the API's filters, keyset paging, the CSV download. */
function rewardsPart(id) {
  const base = `/v1/finance/campaigns/${encodeURIComponent(id)}/rewards`;
  // The cursors of the pages shown so far: [null] is the first page.
  let cursors = [null];
  let next = null;

  const query = (withLimit) => {
    const q = new URLSearchParams();
    for (const name of ["prize", "user", "code"]) {
      const v = $(`f-${name}`).value.trim();
      if (v) q.set(name, v);
    }
    for (const name of ["from", "to"]) {
      const v = utcOf($(`f-${name}`).value);
      if (v) q.set(name, v);
    }
    if (withLimit) q.set("limit", $("f-limit").value);
    return q;
  };

  const row = (r) =>
    el(
      "tr",
      { "data-spin": r.spin_id },
      el("td", {}, r.spun_at.replace("T", " ").replace(/\.\d+Z$|Z$/, "")),
      el("td", {}, r.user_id),
      el("td", {}, r.prize_name || r.prize_id, el("br"), el("code", {}, r.prize_id)),
      el("td", { class: "num" }, `${r.amount} ${r.currency}`),
      el("td", {}, r.code ? el("code", {}, r.code) : "—"),
      el("td", {}, el("code", { title: r.spin_id }, `…${r.spin_id.slice(-12)}`)),
    );

  const show = async () => {
    const q = query(true);
    const after = cursors[cursors.length - 1];
    if (after) q.set("after", after);
    $("rewards-status").textContent = "Loading…";
    const r = await api(`${base}?${q}`);
    if (r.status !== 200) {
      $("rewards").tBodies[0].replaceChildren();
      $("rewards-status").textContent = "";
      $("next-page").disabled = true;
      if (r.status === 400) {
        say("error", `Check the filters: ${r.detail}`);
      } else {
        explain(r, "finance", "the rewards");
      }
      return;
    }
    quiet();
    const rows = r.body.rewards;
    next = r.body.next_after;
    $("rewards").tBodies[0].replaceChildren(
      ...(rows.length ? rows.map(row) : [el("tr", {}, el("td", { colspan: 6 }, "No settled reward matches these filters."))]),
    );
    const page = cursors.length;
    $("rewards-status").textContent = `Page ${page}: ${count(rows.length)} reward${rows.length === 1 ? "" : "s"}${next ? "; more on the next page" : "; the last page"}.`;
    $("next-page").disabled = !next;
    $("first-page").disabled = page === 1;
  };

  $("rewards-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    show();
  });
  $("f-clear").addEventListener("click", () => {
    for (const name of ["prize", "user", "code", "from", "to"]) $(`f-${name}`).value = "";
    cursors = [null];
    show();
  });
  $("next-page").addEventListener("click", () => {
    if (!next) return;
    cursors.push(next);
    show();
  });
  $("first-page").addEventListener("click", () => {
    cursors = [null];
    show();
  });
  $("csv").addEventListener("click", async () => {
    // Every row of the filters (no page): the token goes in a header, so the
    // file is fetched here and saved from a Blob URL.
    const q = query(false);
    $("rewards-status").textContent = "Preparing the CSV…";
    let response;
    try {
      response = await fetch(`${base}?${q}`, {
        headers: { Authorization: `Bearer ${storedToken()}`, Accept: "text/csv" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      say("error", "Cannot download the CSV: the service could not be reached.");
      return;
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch {
        // not problem+json
      }
      say("error", `Cannot download the CSV: the service answered ${response.status}: ${detail}`);
      return;
    }
    const blob = await response.blob();
    const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const link = el("a", { href: URL.createObjectURL(blob), download: named ? named[1] : `rewards-${id}.csv`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    $("rewards-status").textContent = `Downloaded ${link.download} (${count(blob.size)} bytes).`;
  });
  show();
}

// ------------------------------------------------------------------ start ---

const pages = {
  "sign-in": signInPage,
  campaigns: campaignsPage,
  campaign: campaignPage,
  edit: editPage,
  finance: financePage,
};

function start() {
  showWho();
  $("sign-out")?.addEventListener("click", signOut);
  const page = pages[document.body.dataset.page];
  if (page) {
    page().catch((e) => say("error", `Something went wrong in the console: ${e && e.message ? e.message : e}`));
  }
}

start();
