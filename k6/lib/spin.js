// k6/lib/spin.js: what every prizewheel scenario shares: where the service is,
// how to spin, how to tell an honest answer from a wrong one, and the metrics
// the thresholds are written against.
//
// Environment:
//   PRIZEWHEEL_URL   base URL of the service  (default http://127.0.0.1:8080)
//   CAMPAIGN         campaign to spin          (default mega-sale)
//   REQ_TIMEOUT      k6 request timeout        (default 5s)
//   RUN_ID           namespace of this run's user ids (default: made up in setup)
//
// User ids are `k6-<run id>-<tag>-<n>`: a fresh run id per run means fresh
// quotas, so a second run the same day is not refused spin for spin.

import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';
import { tokenFor } from './token.js';

export const BASE_URL = (__ENV.PRIZEWHEEL_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const CAMPAIGN = __ENV.CAMPAIGN || 'mega-sale';
export const REQ_TIMEOUT = __ENV.REQ_TIMEOUT || '5s';

export const CAMPAIGN_URL = `${BASE_URL}/v1/campaigns/${encodeURIComponent(CAMPAIGN)}`;
export const SPIN_URL = `${CAMPAIGN_URL}/spins`;

/** The statuses a well-formed spin may get: drawn, refused (quota or rate limit), shed. */
export const SPIN_STATUSES = [200, 429, 503];
/** The `code`s of a 429 that is a spin quota, not a rate limit. */
export const QUOTA_CODES = ['spin_quota_exhausted', 'daily_spin_quota_exhausted'];

// ------------------------------------------------------------------ metrics ---
// Created at module load, i.e. in the init context, as k6 requires.

/** Answered with a status outside the set allowed for that request. */
export const unexpectedStatus = new Rate('unexpected_status');
/** Answers with a 5xx other than 503 (503 is the documented "retry" answer). */
export const serverErrors = new Counter('server_errors');
/** Requests that got no answer: k6 timeout (REQ_TIMEOUT) or a connection error. */
export const noAnswer = new Rate('no_answer');
/** Of those, the ones that hit REQ_TIMEOUT. */
export const requestTimeouts = new Counter('request_timeouts');
/** Error answers (>= 400) that are application/problem+json with a `code`. */
export const problemJson = new Rate('problem_json');
/** A 200 that repeated a key already answered 200 but did not replay that answer. */
export const replayMismatch = new Counter('replay_mismatch');

// -------------------------------------------------------------------- users ---

/** A run id for user ids: RUN_ID, or base-36 time + random (call it in setup()). */
export function makeRunId() {
  if (__ENV.RUN_ID) return __ENV.RUN_ID;
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
}

export function userId(runId, tag, n) {
  return `k6-${runId}-${tag}-${n}`;
}

export function randomInt(n) {
  return Math.floor(Math.random() * n);
}

// -------------------------------------------------------- idempotency keys ---

let keySeq = 0;

/** A fresh Idempotency-Key, `[A-Za-z0-9_-]{1,64}`: VU, iteration, sequence, random. */
export function newKey() {
  keySeq += 1;
  const rand = Math.floor(Math.random() * 2 ** 40).toString(36);
  return `${__VU}-${__ITER}-${keySeq}-${rand}`;
}

// ----------------------------------------------------------------- requests ---

function mergeTags(defaults, tags) {
  return Object.assign({}, defaults, tags || {});
}

/**
 * POSTs one spin. Options:
 *   key          Idempotency-Key to send (default: a fresh one); `false` sends none
 *   token        bearer token (default: a valid one for `user`); `false` sends no
 *                Authorization header; a string starting with a scheme is sent as is
 *   body         object (sent as JSON), string or ArrayBuffer (sent as is);
 *                omitted: no body
 *   contentType  Content-Type for the body (default application/json)
 *   headers      extra headers
 *   tags         extra tags (name defaults to 'spin')
 *   responseCallback  per-request expected statuses (default: the global one)
 * Returns { res, key }.
 */
export function postSpin(user, opts) {
  const o = opts || {};
  const key = o.key === undefined ? newKey() : o.key;
  const headers = {};
  if (o.token !== false) {
    const token = o.token === undefined ? tokenFor(user) : o.token;
    headers.Authorization = /^[A-Za-z]+ /.test(token) ? token : `Bearer ${token}`;
  }
  if (key !== false) headers['Idempotency-Key'] = key;
  let body = null;
  if (o.body !== undefined && o.body !== null) {
    body = typeof o.body === 'string' || o.body instanceof ArrayBuffer ? o.body : JSON.stringify(o.body);
    headers['Content-Type'] = o.contentType || 'application/json';
  }
  Object.assign(headers, o.headers || {});
  const params = {
    headers,
    tags: mergeTags({ name: 'spin' }, o.tags),
    timeout: REQ_TIMEOUT,
  };
  if (o.responseCallback) params.responseCallback = o.responseCallback;
  const url = o.url || SPIN_URL;
  const res = o.method && o.method !== 'POST'
    ? http.request(o.method, url, body, params)
    : http.post(url, body, params);
  return { res, key };
}

/** GET /v1/campaigns/{id} as `user` (what the app shows before the wheel). */
export function getCampaign(user, opts) {
  const o = opts || {};
  const headers = {};
  if (o.token !== false) {
    const token = o.token === undefined ? tokenFor(user) : o.token;
    headers.Authorization = /^[A-Za-z]+ /.test(token) ? token : `Bearer ${token}`;
  }
  const params = {
    headers,
    tags: mergeTags({ name: 'campaign' }, o.tags),
    timeout: REQ_TIMEOUT,
  };
  if (o.responseCallback) params.responseCallback = o.responseCallback;
  return http.get(o.url || CAMPAIGN_URL, params);
}

// ----------------------------------------------------------------- checking ---

function header(res, name) {
  // k6 canonicalises header names (Retry-After, Content-Type, ...).
  return res.headers[name] || '';
}

let oddLogged = 0;
const ODD_LOG_MAX = Number(__ENV.ODD_LOG_MAX || 5);

/** Logs (at most ODD_LOG_MAX times per VU) an answer that failed a check. */
export function logOdd(res, why) {
  if (oddLogged >= ODD_LOG_MAX) return;
  oddLogged += 1;
  const body = typeof res.body === 'string' ? res.body.slice(0, 300) : '';
  console.warn(
    `${why}: ${res.request.method} ${res.url} -> ${res.status} ` +
      `[${header(res, 'Content-Type')}] ${res.error || ''} ${body}`,
  );
}

function isProblem(res) {
  return header(res, 'Content-Type').toLowerCase().startsWith('application/problem+json');
}

/** The JSON body, or null when it is not JSON. */
export function json(res) {
  try {
    return res.json();
  } catch (_) {
    return null;
  }
}

/**
 * Records `res` in the shared metrics: no answer, unexpected status (not in
 * `allowed`), 5xx other than 503, problem+json on errors. Returns
 * 'none' (no answer), 'ok' (status allowed) or 'unexpected'.
 */
export function record(res, allowed, tags) {
  if (res.status === 0) {
    noAnswer.add(true, tags);
    if (res.error_code === 1050) requestTimeouts.add(1, tags);
    return 'none';
  }
  noAnswer.add(false, tags);
  const ok = allowed.indexOf(res.status) >= 0;
  unexpectedStatus.add(!ok, tags);
  if (res.status >= 500 && res.status !== 503) serverErrors.add(1, tags);
  if (res.status >= 400) {
    const problem = isProblem(res);
    problemJson.add(problem, tags);
    if (!problem) logOdd(res, 'error answer is not problem+json');
  }
  if (!ok) logOdd(res, 'unexpected status');
  return ok ? 'ok' : 'unexpected';
}

/**
 * Checks the shape of an error answer: problem+json whose `status` is the HTTP
 * status, with a `code` (in `codes` when given); 503 and rate-limit 429s carry
 * Retry-After. Returns the problem document (or null).
 */
export function checkProblem(res, codes, tags) {
  const p = isProblem(res) ? json(res) : null;
  const code = p && p.code;
  const results = {
    'error: application/problem+json with status and code': () =>
      p !== null && p.status === res.status && typeof code === 'string',
  };
  if (codes) {
    results[`error: code is ${codes.join('|')}`] = () => codes.indexOf(code) >= 0;
  }
  if (res.status === 503 || (res.status === 429 && QUOTA_CODES.indexOf(code) < 0)) {
    results[`error: ${res.status} ${code || ''} has Retry-After`] = () =>
      /^\d+$/.test(header(res, 'Retry-After'));
  }
  if (code === 'daily_spin_quota_exhausted') {
    results['error: daily quota has Retry-After'] = () => /^\d+$/.test(header(res, 'Retry-After'));
  }
  if (res.status === 401) {
    results['error: 401 has WWW-Authenticate: Bearer'] = () =>
      header(res, 'Www-Authenticate').startsWith('Bearer');
  }
  if (!check(res, results, tags)) logOdd(res, 'error answer failed a check');
  return p;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Checks a spin answer: a 200 is a well-formed draw for CAMPAIGN whose
 * `replayed` agrees with the Idempotent-Replayed header; anything else is a
 * problem document. `limits` (from campaignLimits) bounds spins_left.
 * Returns the parsed body (draw or problem), or null.
 */
export function checkSpin(res, tags, limits) {
  if (res.status === 0) return null;
  if (res.status !== 200) return checkProblem(res, null, tags);
  const b = json(res);
  const maxLeft = limits ? limits.maxLeft : Infinity;
  const passed = check(
    res,
    {
      'spin 200: a draw (spin_id, prize, value, spins_left, replayed)': () =>
        b !== null &&
        UUID.test(b.spin_id) &&
        b.prize && typeof b.prize.id === 'string' && typeof b.prize.name === 'string' &&
        b.prize.value && /^\d+(\.\d+)?$/.test(b.prize.value.amount) &&
        /^[A-Z]{3}$/.test(b.prize.value.currency) &&
        Number.isInteger(b.spins_left) && b.spins_left >= 0 && b.spins_left <= maxLeft &&
        typeof b.replayed === 'boolean',
      'spin 200: campaign_id is the campaign': () => b !== null && b.campaign_id === CAMPAIGN,
      'spin 200: Idempotent-Replayed header matches replayed': () =>
        b !== null && (header(res, 'Idempotent-Replayed') === 'true') === (b.replayed === true),
    },
    tags,
  );
  if (!passed) logOdd(res, 'spin answer failed a check');
  return b;
}

/**
 * After a key was answered 200 with `first`, a later 200 for the same key must
 * replay it: replayed true, same spin_id and prize. Counts replay_mismatch.
 */
export function checkReplay(first, again, tags) {
  const same =
    again !== null && again.replayed === true && again.spin_id === first.spin_id &&
    again.prize && first.prize && again.prize.id === first.prize.id;
  if (!same) {
    replayMismatch.add(1, tags);
    console.warn(`replay mismatch: first ${JSON.stringify(first)}, again ${JSON.stringify(again)}`);
  }
  check(null, { 'replay: replayed true, same spin_id and prize': () => same }, tags);
  return same;
}

/** Checks a campaign view answer (200 or problem). Returns the body or null. */
export function checkCampaign(res, tags) {
  if (res.status === 0) return null;
  if (res.status !== 200) return checkProblem(res, null, tags);
  const b = json(res);
  const passed = check(
    res,
    {
      'campaign 200: a view of the campaign with its prizes': () =>
        b !== null && b.id === CAMPAIGN && typeof b.status === 'string' &&
        Number.isInteger(b.spins_left) && Array.isArray(b.prizes),
    },
    tags,
  );
  if (!passed) logOdd(res, 'campaign answer failed a check');
  return b;
}

/** The largest spins_left a draw can report, from a campaign view. */
export function campaignLimits(view) {
  const total = view.spins_per_user;
  const daily = view.spins_per_user_per_day;
  const per = daily ? Math.min(total, daily) : total;
  return { total, daily, maxLeft: Math.max(per - 1, 0) };
}

/** Seconds from Retry-After (0 when absent or not a number). */
export function retryAfterS(res) {
  const v = Number(header(res, 'Retry-After'));
  return Number.isFinite(v) && v > 0 ? v : 0;
}

/**
 * setup() helper: the service answers /healthz and the campaign is live for a
 * probe user. Throws (ending the run before any load) otherwise. Returns
 * { runId, limits, view }.
 */
export function preflight() {
  const health = http.get(`${BASE_URL}/healthz`, { timeout: '5s', tags: { name: 'preflight' } });
  if (health.status !== 200) {
    throw new Error(`GET ${BASE_URL}/healthz answered ${health.status} ${health.error || ''}`);
  }
  const runId = makeRunId();
  const res = getCampaign(userId(runId, 'probe', 0), { tags: { name: 'preflight' } });
  if (res.status !== 200) {
    throw new Error(`GET ${CAMPAIGN_URL} answered ${res.status}: ${res.body}`);
  }
  const view = res.json();
  if (view.status !== 'live') {
    throw new Error(`campaign ${CAMPAIGN} is ${view.status}, not live: spins would answer 409`);
  }
  return { runId, limits: campaignLimits(view), view };
}

/**
 * Thresholds that always pass, so the end-of-test summary lists how many
 * requests got each status (k6 only prints sub-metrics that have thresholds).
 */
export function statusCounters(name, statuses) {
  const out = {};
  for (const s of statuses) out[`http_reqs{name:${name},status:${s}}`] = ['count>=0'];
  return out;
}

/** Parses a k6 duration ('90s', '2m', '1m30s', '1h') to seconds. */
export function durationS(text) {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m;
  let seen = false;
  while ((m = re.exec(text)) !== null) {
    seen = true;
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n / 1000 : m[2] === 's' ? n : m[2] === 'm' ? n * 60 : n * 3600;
  }
  if (!seen) throw new Error(`not a duration: '${text}' (e.g. 90s, 2m, 1m30s)`);
  return total;
}

export function envNumber(name, dflt) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got '${raw}'`);
  return n;
}

// Longest pause before a client's retry, seconds (Retry-After is honoured up to this).
export const MAX_BACKOFF_S = 2;

/** The pause before retry `attempt` after `res`: exponential with jitter, at least Retry-After. */
export function backoffS(attempt, res) {
  const base = Math.min(0.1 * 2 ** attempt, MAX_BACKOFF_S);
  const hinted = Math.min(retryAfterS(res), MAX_BACKOFF_S);
  return Math.max(base, hinted) * (0.5 + Math.random() / 2);
}

/** A client context as a shop would send it with a spin (the order that earned it). */
export function orderContext() {
  return {
    order_id: `o-${__VU}-${__ITER}`,
    channel: Math.random() < 0.7 ? 'app' : 'web',
    cart_value: { amount: String(100 + randomInt(9900)), currency: 'INR' },
  };
}
