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
async function api(path, token = storedToken()) {
  let response;
  try {
    response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    return { status: 0, body: null, code: null, detail: "the service could not be reached" };
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const problem = body && typeof body === "object" ? body : {};
  return {
    status: response.status,
    body,
    code: problem.code || null,
    detail: problem.detail || problem.title || response.statusText || `status ${response.status}`,
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

function everyFewSeconds(load) {
  setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, REFRESH_MS);
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
    $("campaign").hidden = false;
    quiet();
  };
  $("refresh").addEventListener("click", load);
  await load();
  everyFewSeconds(load);
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
}

// ------------------------------------------------------------------ start ---

const pages = {
  "sign-in": signInPage,
  campaigns: campaignsPage,
  campaign: campaignPage,
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
