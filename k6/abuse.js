// k6/abuse.js: a few users and addresses misbehaving at once, each kind in its
// own scenario, all for DURATION:
//
//   hammer      HAMMER_USERS users spinning many times a second, half with fresh
//               keys (200 until the quota, then 429), half re-sending one key
//               drawn in setup() (must replay that draw: 200, replayed: true)
//   key_reuse   one key sent with another body -> 422 idempotency_key_reused;
//               the first body again, keys reordered and spaced -> replay
//   bad_tokens  garbage, no header, wrong scheme, expired, not yet valid, wrong
//               signature, alg none, HS512, tampered claims, missing claims,
//               a bad subject, an oversized token -> 401 invalid_token
//   bad_input   bodies over 4 KiB -> 413; malformed or non-object JSON -> 400;
//               a non-JSON content type -> 415; missing or invalid
//               Idempotency-Key -> 400; unknown or invalid campaign -> 404;
//               wrong method or path -> 404/405
//   spoof       a user rotating X-Forwarded-For, X-Real-IP, Forwarded,
//               True-Client-IP and CF-Connecting-IP -> 200/429/503 as usual
//
// On a loopback target k6/run.sh makes the VUs send from several addresses
// (K6_LOCAL_IPS=127.0.0.1-127.0.0.4 unless set; k6 takes that option only from
// the environment or --local-ips, not from the script).
//
// What must hold: every answer is in its case's documented set (a 429 or 503
// with Retry-After, i.e. rate limiting or shedding, is acceptable for any
// case), never a 5xx other than 503 (server_errors == 0), every error is
// application/problem+json with the expected `code`, and bad input is refused
// fast.
//
// Environment (defaults in brackets): DURATION [30s], HAMMER_USERS [3],
// HAMMER_RATE [150], KEY_REUSE_RATE [5], BAD_TOKEN_RATE [40],
// BAD_INPUT_RATE [40], SPOOF_RATE [50] (iterations/s), P95_MS [100],
// P99_MS [300], plus PRIZEWHEEL_URL, CAMPAIGN, REQ_TIMEOUT, RUN_ID and the
// PRIZEWHEEL_JWT_* variables.

import http from 'k6/http';
import { check } from 'k6';
import crypto from 'k6/crypto';
import { Counter } from 'k6/metrics';
import { claimsFor, forge, signHS256, tokenFor } from './lib/token.js';
import {
  BASE_URL,
  CAMPAIGN,
  CAMPAIGN_URL,
  QUOTA_CODES,
  SPIN_STATUSES,
  checkProblem,
  checkReplay,
  checkSpin,
  envNumber,
  getCampaign,
  json,
  newKey,
  postSpin,
  preflight,
  randomInt,
  record,
  retryAfterS,
  userId,
} from './lib/spin.js';

const DURATION = __ENV.DURATION || '30s';
const HAMMER_USERS = envNumber('HAMMER_USERS', 3);
const P95_MS = envNumber('P95_MS', 100);
const P99_MS = envNumber('P99_MS', 300);

const CASES = ['hammer', 'key_reuse', 'bad_tokens', 'bad_input', 'spoof'];

/** Answers outside a case's set that were a 429/503 with Retry-After. */
const shed = new Counter('shed_answers');

function scenario(exec, rate) {
  return {
    executor: 'constant-arrival-rate',
    exec,
    rate,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: Math.max(2, Math.ceil(rate / 10)),
    maxVUs: Math.max(10, rate * 2),
    gracefulStop: '10s',
    tags: { case: exec },
  };
}

const thresholds = {
  'http_req_duration{expected_response:true}': [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
  server_errors: ['count==0'],
  unexpected_status: ['rate==0'],
  problem_json: ['rate==1'],
  no_answer: ['rate==0'],
  replay_mismatch: ['count==0'],
  checks: ['rate==1'],
  shed_answers: ['count>=0'],
  // Listed for the summary only.
  'http_reqs{case:hammer,status:200}': ['count>=0'],
  'http_reqs{case:hammer,status:429}': ['count>=0'],
  'http_reqs{case:spoof,status:200}': ['count>=0'],
  'http_reqs{case:spoof,status:429}': ['count>=0'],
};
for (const c of CASES) {
  thresholds[`unexpected_status{case:${c}}`] = ['rate==0'];
  thresholds[`checks{case:${c}}`] = ['rate==1'];
}

export const options = {
  scenarios: {
    hammer: scenario('hammer', envNumber('HAMMER_RATE', 150)),
    key_reuse: scenario('key_reuse', envNumber('KEY_REUSE_RATE', 5)),
    bad_tokens: scenario('bad_tokens', envNumber('BAD_TOKEN_RATE', 40)),
    bad_input: scenario('bad_input', envNumber('BAD_INPUT_RATE', 40)),
    spoof: scenario('spoof', envNumber('SPOOF_RATE', 50)),
  },
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
};

// Per-request "expected" statuses for http_req_failed; built in the init context.
const callbacks = {};
function callbackFor(statuses) {
  const id = statuses.join(',');
  if (!callbacks[id]) callbacks[id] = http.expectedStatuses(...statuses, 429, 503);
  return callbacks[id];
}
for (const s of [SPIN_STATUSES, [200], [400], [401], [403], [404], [404, 405], [413], [415], [422]]) {
  callbackFor(s);
}

/**
 * Records an answer for `name`: allowed when its status is in `statuses`, or a
 * 429/503 with Retry-After (rate limiting, shedding); errors must carry one of
 * `codes` (when given) unless shed.
 */
function answer(res, name, statuses, codes) {
  const tags = { answer: name };
  const isShed =
    statuses.indexOf(res.status) < 0 &&
    (res.status === 429 || res.status === 503) &&
    retryAfterS(res) > 0;
  if (isShed) shed.add(1, tags);
  record(res, isShed ? [res.status] : statuses, tags);
  if (res.status === 0) return null;
  if (res.status >= 400) return checkProblem(res, isShed ? null : codes, tags);
  return json(res);
}

export function setup() {
  const data = preflight();
  // One draw per hammer user with the key the hammer re-sends.
  data.sticky = [];
  for (let n = 0; n < HAMMER_USERS; n += 1) {
    const user = userId(data.runId, 'hammer', n);
    const { res } = postSpin(user, { key: 'sticky', tags: { name: 'preflight' } });
    if (res.status !== 200) {
      throw new Error(`setup spin for ${user} answered ${res.status}: ${res.body}`);
    }
    data.sticky.push(res.json());
  }
  return data;
}

// ------------------------------------------------------------------ hammer ---

export function hammer(data) {
  const n = randomInt(HAMMER_USERS);
  const user = userId(data.runId, 'hammer', n);
  if (Math.random() < 0.5) {
    const { res } = postSpin(user, { responseCallback: callbackFor(SPIN_STATUSES) });
    const out = answer(res, 'hammer_fresh', SPIN_STATUSES, null);
    if (res.status === 200) checkSpin(res, { answer: 'hammer_fresh' }, data.limits);
    if (res.status === 429 && out) {
      check(out, { 'hammer: a 429 names its quota or has Retry-After': (p) =>
        QUOTA_CODES.indexOf(p.code) >= 0 || retryAfterS(res) > 0 });
    }
  } else {
    const { res } = postSpin(user, { key: 'sticky', responseCallback: callbackFor([200]) });
    const out = answer(res, 'hammer_sticky', [200], null);
    if (res.status === 200) {
      checkSpin(res, { answer: 'hammer_sticky' }, data.limits);
      checkReplay(data.sticky[n], out, { answer: 'hammer_sticky' });
    }
  }
}

// --------------------------------------------------------------- key_reuse ---

export function key_reuse(data) {
  const user = userId(data.runId, 'reuse', `${__VU}-${__ITER}`);
  const key = newKey();
  const bodyA = { order_id: `o-${__VU}-${__ITER}`, items: [3, 1, 2], meta: { b: 1, a: 'x' } };
  const first = postSpin(user, { key, body: bodyA, responseCallback: callbackFor([200]) }).res;
  const drawn = answer(first, 'reuse_first', [200], null);
  if (first.status !== 200) return; // shed: nothing was recorded for the key
  checkSpin(first, { answer: 'reuse_first' }, data.limits);

  const other = postSpin(user, {
    key,
    body: Object.assign({}, bodyA, { order_id: 'someone-else' }),
    responseCallback: callbackFor([422]),
  }).res;
  answer(other, 'reuse_other_body', [422], ['idempotency_key_reused']);

  const none = postSpin(user, { key, responseCallback: callbackFor([422]) }).res;
  answer(none, 'reuse_no_body', [422], ['idempotency_key_reused']);

  // The same meaning, spelled differently: canonical JSON makes it a replay.
  const spelled = `{ "meta": {"a": "x", "b": 1},\n  "items": [3, 1, 2], "order_id": "${bodyA.order_id}" }`;
  const again = postSpin(user, { key, body: spelled, responseCallback: callbackFor([200]) }).res;
  const out = answer(again, 'reuse_same_body', [200], null);
  if (again.status === 200) checkReplay(drawn, out, { answer: 'reuse_same_body' });
}

// -------------------------------------------------------------- bad_tokens ---

const OTHER_SECRET = 'not-the-service-secret-not-the-service-secret';

function nowS() {
  return Math.floor(Date.now() / 1000);
}

function b64sig(alg, input) {
  return crypto.hmac(alg, __ENV.PRIZEWHEEL_JWT_SECRET, input, 'base64rawurl');
}

/** [name, Authorization header value or false for none]; built per call (exp moves). */
function badTokens(user) {
  const good = tokenFor(user);
  const [h, p, s] = good.split('.');
  const claims = claimsFor(user);
  const hs512Header = forge({ alg: 'HS512', typ: 'JWT' }, claims).split('.').slice(0, 2).join('.');
  const noneBody = forge({ alg: 'none', typ: 'JWT' }, claims);
  const tampered = forge({ alg: 'HS256', typ: 'JWT' }, claimsFor('someone-else')).split('.')[1];
  const noExp = Object.assign({}, claims);
  delete noExp.exp;
  const noSub = Object.assign({}, claims);
  delete noSub.sub;
  return [
    ['garbage', 'Bearer not-a-jwt'],
    ['three_segments_of_garbage', 'Bearer aaaa.bbbb.cccc'],
    ['empty_bearer', 'Bearer  '],
    ['no_header', false],
    ['basic_scheme', 'Basic dXNlcjpwYXNzd29yZA=='],
    ['other_scheme', `Token ${good}`],
    ['expired', signHS256(Object.assign({}, claims, { exp: nowS() - 3600 }))],
    ['not_yet_valid', signHS256(Object.assign({}, claims, { nbf: nowS() + 3600 }))],
    ['wrong_signature', signHS256(claims, OTHER_SECRET)],
    ['signature_cut', `${h}.${p}.${s.slice(0, -4)}`],
    ['alg_none_unsigned', noneBody],
    ['alg_none_with_signature', `${noneBody}${b64sig('sha256', noneBody.slice(0, -1))}`],
    ['forged_marketing_role', signHS256(Object.assign({}, claims, { roles: ['marketing'] }), OTHER_SECRET)],
    ['hs512', `${hs512Header}.${b64sig('sha512', hs512Header)}`],
    ['tampered_claims', `${h}.${tampered}.${s}`],
    ['missing_exp', signHS256(noExp)],
    ['missing_sub', signHS256(noSub)],
    ['subject_with_space', signHS256(claimsFor('two words'))],
    ['oversized', signHS256(Object.assign({}, claims, { pad: 'x'.repeat(9000) }))],
  ];
}

export function bad_tokens(data) {
  const user = userId(data.runId, 'token', __VU);
  const variants = badTokens(user);
  const [name, auth] = variants[__ITER % variants.length];
  const token = auth;
  const onGet = __ITER % 3 === 2;
  const res = onGet
    ? getCampaign(user, { token, responseCallback: callbackFor([401]), tags: { variant: name } })
    : postSpin(user, { token, responseCallback: callbackFor([401]), tags: { variant: name } }).res;
  answer(res, `token_${name}`, [401], ['invalid_token']);
}

// --------------------------------------------------------------- bad_input ---

function objectOfSize(bytes) {
  const skeleton = JSON.stringify({ pad: '' });
  return JSON.stringify({ pad: 'x'.repeat(Math.max(0, bytes - skeleton.length)) });
}

const BODY_4097 = objectOfSize(4097);
const BODY_64K = objectOfSize(64 * 1024);
// {"a":"<0xff 0xfe>"}: JSON syntax around bytes that are not UTF-8.
const NOT_UTF8 = new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]).buffer;

/** [name, postSpin options, statuses, codes] */
const BAD_INPUT = [
  ['body_4097_bytes', { body: BODY_4097 }, [413], ['body_too_large']],
  ['body_64_kib', { body: BODY_64K }, [413], ['body_too_large']],
  ['malformed_json', { body: '{"order_id": "o-1",' }, [400], ['malformed_body']],
  ['json_array', { body: '[1, 2, 3]' }, [400], ['malformed_body']],
  ['json_string', { body: '"spin"' }, [400], ['malformed_body']],
  ['not_utf8', { body: NOT_UTF8 }, [400], ['malformed_body']],
  ['text_plain', { body: '{"a": 1}', contentType: 'text/plain' }, [415], ['unsupported_media_type']],
  ['form_encoded', { body: 'a=1&b=2', contentType: 'application/x-www-form-urlencoded' }, [415], ['unsupported_media_type']],
  ['missing_key', { key: false }, [400], ['idempotency_key_missing']],
  ['empty_key', { key: '' }, [400], ['idempotency_key_missing', 'idempotency_key_invalid']],
  ['key_65_chars', { key: 'k'.repeat(65) }, [400], ['idempotency_key_invalid']],
  ['key_bad_chars', { key: 'key/with.dots' }, [400], ['idempotency_key_invalid']],
  ['unknown_campaign', { url: `${BASE_URL}/v1/campaigns/no-such-campaign/spins` }, [404], ['campaign_not_found']],
  ['invalid_campaign_id', { url: `${BASE_URL}/v1/campaigns/Mega_Sale!/spins` }, [404], ['campaign_not_found', 'not_found']],
  ['get_on_spins', { method: 'GET' }, [404, 405], ['not_found', 'method_not_allowed']],
  ['put_on_campaign', { method: 'PUT', url: CAMPAIGN_URL, body: {} }, [404, 405], ['not_found', 'method_not_allowed']],
  ['admin_apply_as_user', { method: 'PUT', url: `${BASE_URL}/v1/admin/campaigns/${CAMPAIGN}`, body: 'id: x\n', contentType: 'application/yaml' }, [403], ['forbidden']],
  ['admin_live_as_user', { method: 'GET', url: `${BASE_URL}/v1/admin/campaigns/${CAMPAIGN}` }, [403], ['forbidden']],
  ['finance_as_user', { method: 'GET', url: `${BASE_URL}/v1/finance/campaigns/${CAMPAIGN}/summary` }, [403], ['forbidden']],
  ['unknown_path', { method: 'GET', url: `${BASE_URL}/v1/nope` }, [404], ['not_found']],
];

export function bad_input(data) {
  const user = userId(data.runId, 'input', __VU);
  const [name, opts, statuses, codes] = BAD_INPUT[__ITER % BAD_INPUT.length];
  const o = Object.assign({}, opts, {
    responseCallback: callbackFor(statuses),
    tags: { variant: name },
  });
  const { res } = postSpin(user, o);
  answer(res, `input_${name}`, statuses, codes);
}

// ------------------------------------------------------------------- spoof ---

function randomIp() {
  return `${1 + randomInt(222)}.${randomInt(256)}.${randomInt(256)}.${1 + randomInt(254)}`;
}

export function spoof(data) {
  const user = userId(data.runId, 'spoof', randomInt(2));
  const ip = randomIp();
  const headers = {
    'X-Forwarded-For': `${ip}, ${randomIp()}`,
    'X-Real-IP': ip,
    Forwarded: `for=${ip};proto=https`,
    'True-Client-IP': ip,
    'CF-Connecting-IP': ip,
  };
  const { res } = postSpin(user, { headers, responseCallback: callbackFor(SPIN_STATUSES) });
  answer(res, 'spoof', SPIN_STATUSES, null);
  if (res.status === 200) checkSpin(res, { answer: 'spoof' }, data.limits);
}
