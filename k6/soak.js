// k6/soak.js: a long run at a steady rate below capacity (about 70 %; see
// docs/reliability.md, "Soak"). What must hold for its whole length: latency
// flat, no answer other than draws,
// replays and quota refusals. What the service's memory, Redis's memory and the
// settlement lag do meanwhile is sampled outside k6 (bench/soak.sh runs this
// script and does that); here every request carries an interval tag `iv`
// (i000, i001, ... INTERVAL each) so the summary has p99 and counts per interval.
//
// Traffic: spins arrive at a constant RATE (visits/s) for DURATION. Shoppers
// keep arriving: at any moment the visits come from the users of a sliding
// window of USER_WINDOW seconds, who each make about SPINS_PER_USER visits in
// that window, then leave; new users enter at RATE / SPINS_PER_USER a second.
// So the per-user counters and idempotency records in Redis grow linearly with
// time, and the share of quota refusals is steady after the first window: a
// user whose visits exceed the campaign's spins_per_user gets 429
// spin_quota_exhausted (expected; bench/soak.sh applies a quota of 5, so with
// 4 visits on average about a tenth of the visits are refused).
//
// A visit: one spin with a fresh Idempotency-Key, with a client-context body
// CONTEXT_RATIO of the time; on a timeout or a 503 the client retries with the
// SAME key and body (after Retry-After, capped at 2 s) up to MAX_RETRIES times;
// and REPLAY_RATIO of the draws are sent again with the same key (the answer
// was lost on the way): that 200 must replay the draw (same spin_id and prize).
//
// MODE=capacity instead runs VUS closed-loop clients, each spinning as fast as
// answered, for DURATION, as users of a fixed pool of CAP_USERS (use a campaign
// with a large quota): the iterations/s it reaches is the capacity of the
// service as driven by k6 on this machine (bench/soak.sh takes SOAK_SHARE of it).
//
// Environment (defaults in brackets):
//   RATE [1000] visits/s        DURATION [15m]      INTERVAL [30s]
//   SPINS_PER_USER [4]          USER_WINDOW [60s]
//   CONTEXT_RATIO [0.3]         REPLAY_RATIO [0.05] MAX_RETRIES [3]
//   PRE_VUS [max(100, RATE/10)]  MAX_VUS [max(1000, RATE/2)]
//   P95_MS [50] P99_MS [200]    latency of answered spins, in every interval
//   MODE [soak] | capacity: VUS [64] CAP_USERS [100000], DURATION [20s]
//   plus PRIZEWHEEL_URL, CAMPAIGN, REQ_TIMEOUT, RUN_ID (lib/spin.js) and the
//   PRIZEWHEEL_JWT_* variables (lib/token.js).
//
// The first iteration logs `SOAK_T0=<ms since the epoch>`, the start of
// interval i000, so that samples taken outside k6 line up with the intervals.

import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import {
  backoffS,
  orderContext,
  QUOTA_CODES,
  SPIN_STATUSES,
  checkReplay,
  checkSpin,
  durationS,
  envNumber,
  postSpin,
  preflight,
  randomInt,
  record,
  statusCounters,
  userId,
} from './lib/spin.js';

const MODE = __ENV.MODE || 'soak';
if (MODE !== 'soak' && MODE !== 'capacity') {
  throw new Error(`MODE must be soak or capacity, got '${MODE}'`);
}
const CAPACITY = MODE === 'capacity';

const RATE = envNumber('RATE', 1000);
const DURATION = __ENV.DURATION || (CAPACITY ? '20s' : '15m');
const DURATION_S = durationS(DURATION);
const INTERVAL_S = durationS(__ENV.INTERVAL || '30s');
const INTERVALS = Math.max(1, Math.ceil(DURATION_S / INTERVAL_S));
const SPINS_PER_USER = envNumber('SPINS_PER_USER', 4);
const USER_WINDOW_S = durationS(__ENV.USER_WINDOW || '60s');
// New users a second, and how many users one window holds.
const USERS_PER_S = RATE / SPINS_PER_USER;
const WINDOW_USERS = Math.max(1, Math.round(USERS_PER_S * USER_WINDOW_S));
const CONTEXT_RATIO = envNumber('CONTEXT_RATIO', 0.3);
const REPLAY_RATIO = envNumber('REPLAY_RATIO', 0.05);
const MAX_RETRIES = envNumber('MAX_RETRIES', 3);
const P95_MS = envNumber('P95_MS', 50);
const P99_MS = envNumber('P99_MS', 200);
const VUS = envNumber('VUS', 64);
const CAP_USERS = envNumber('CAP_USERS', 100000);

if (INTERVALS > 1000) throw new Error(`DURATION / INTERVAL gives ${INTERVALS} intervals; at most 1000`);

/**
 * Every answer to a spin, by what it was (tag `code`): draw, replay, a problem
 * code (spin_quota_exhausted, rate_limited, overloaded, ...), other_<status>
 * for a problem without a known code, no_answer.
 */
const answers = new Counter('soak_answers');
/** Per interval: answers that are neither a draw, a replay nor a quota refusal. */
const errors = new Counter('soak_errors');
/** Per interval: quota refusals (429 spin_quota_exhausted / daily_...). */
const quota = new Counter('soak_quota');
const retries = new Counter('spin_retries');
const retriesReplayed = new Counter('spin_retries_replayed');

// Codes listed in the summary (anything else is counted as `other`).
const KNOWN_CODES = [
  'draw',
  'replay',
  ...QUOTA_CODES,
  'rate_limited',
  'overloaded',
  'service_unavailable',
  'durability_timeout',
  'internal_error',
  'idempotency_key_reused',
  'no_answer',
  'other',
];

http.setResponseCallback(http.expectedStatuses(...SPIN_STATUSES));

function ivTag(i) {
  return `i${String(i).padStart(3, '0')}`;
}

function perInterval() {
  const out = {};
  for (let i = 0; i < INTERVALS; i += 1) {
    const iv = ivTag(i);
    out[`http_req_duration{name:spin,expected_response:true,iv:${iv}}`] = [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`];
    out[`http_reqs{name:spin,iv:${iv}}`] = ['count>=0'];
    out[`soak_errors{iv:${iv}}`] = ['count>=0'];
    out[`soak_quota{iv:${iv}}`] = ['count>=0'];
  }
  return out;
}

function perCode() {
  const out = {};
  for (const c of KNOWN_CODES) out[`soak_answers{code:${c}}`] = ['count>=0'];
  return out;
}

const soakScenario = {
  executor: 'constant-arrival-rate',
  rate: RATE,
  timeUnit: '1s',
  duration: DURATION,
  preAllocatedVUs: envNumber('PRE_VUS', Math.max(100, Math.ceil(RATE / 10))),
  maxVUs: envNumber('MAX_VUS', Math.max(1000, Math.ceil(RATE / 2))),
  gracefulStop: '15s',
};

const capacityScenario = {
  executor: 'constant-vus',
  vus: VUS,
  duration: DURATION,
  gracefulStop: '5s',
};

export const options = {
  scenarios: { [MODE]: CAPACITY ? capacityScenario : soakScenario },
  thresholds: CAPACITY
    ? {
        // Saturation: 503s are expected; wrong answers are not.
        unexpected_status: ['rate<0.001'],
        server_errors: ['count==0'],
        ...statusCounters('spin', SPIN_STATUSES),
        ...perCode(),
      }
    : {
        // Latency is held per interval (perInterval), not by a whole-run Trend
        // threshold: k6 evaluates thresholds every 2 s, and a percentile over a
        // whole-run Trend sorts every value so far, a cost that grows with the run
        // on the cores k6 shares with the service (with one, a 15-minute run saw
        // k6's p99 climb from 0.14 to 1.5 s while its p50 stayed at 3-6 ms).
        // The soak's promise: nothing but draws, replays and quota refusals.
        soak_errors: ['count==0'],
        unexpected_status: ['rate==0'],
        server_errors: ['count==0'],
        no_answer: ['rate==0'],
        problem_json: ['rate==1'],
        replay_mismatch: ['count==0'],
        checks: ['rate>0.999'],
        // The load was really offered: k6 kept up with the arrivals (< 1% dropped).
        dropped_iterations: [`count<${Math.max(1, Math.ceil(RATE * DURATION_S * 0.01))}`],
        // Listed for the summary (and bench/soak.sh's report) only.
        ...statusCounters('spin', SPIN_STATUSES),
        'http_reqs{name:spin,kind:retry}': ['count>=0'],
        'http_reqs{name:spin,kind:replay}': ['count>=0'],
        ...perCode(),
        ...perInterval(),
      },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
};

export function setup() {
  const data = preflight();
  if (CAPACITY) {
    console.log(`soak capacity: ${VUS} closed-loop clients for ${DURATION} (run ${data.runId})`);
  } else {
    console.log(
      `soak: ${RATE} visits/s for ${DURATION} in ${INTERVALS} intervals of ${INTERVAL_S}s; ` +
        `${Math.round(USERS_PER_S)} new users/s, ${WINDOW_USERS} in a ${USER_WINDOW_S}s window ` +
        `(run ${data.runId}); quota ${data.limits.total} total / ${data.limits.daily || '-'} a day`,
    );
  }
  return data;
}

function elapsedS() {
  return (Date.now() - exec.scenario.startTime) / 1000;
}

/** A user of the window at this moment: ids enter at USERS_PER_S and stay USER_WINDOW_S. */
function soakUser(runId, t) {
  const newest = Math.floor(t * USERS_PER_S) + WINDOW_USERS;
  return userId(runId, 'w', newest - 1 - randomInt(WINDOW_USERS));
}


/** What an answer was, for soak_answers: draw, replay, a problem code, no_answer, other. */
function classify(res, out) {
  if (res.status === 0) return 'no_answer';
  if (res.status === 200) return out !== null && out.replayed === true ? 'replay' : 'draw';
  const code = out !== null && typeof out.code === 'string' ? out.code : '';
  return KNOWN_CODES.indexOf(code) >= 0 ? code : 'other';
}

function count(res, out, iv) {
  const code = classify(res, out);
  answers.add(1, { code });
  if (QUOTA_CODES.indexOf(code) >= 0) {
    quota.add(1, { iv });
  } else {
    // Zero keeps the interval's sub-metric present when nothing went wrong.
    errors.add(code === 'draw' || code === 'replay' ? 0 : 1, { iv });
  }
}

export default function (data) {
  if (exec.scenario.iterationInTest === 0) {
    console.log(`SOAK_T0=${exec.scenario.startTime}`);
  }
  const t = elapsedS();
  const iv = ivTag(Math.min(INTERVALS - 1, Math.max(0, Math.floor(t / INTERVAL_S))));
  const user = CAPACITY ? userId(data.runId, 'c', randomInt(CAP_USERS)) : soakUser(data.runId, t);

  const body = Math.random() < CONTEXT_RATIO ? orderContext() : null;
  let key;
  let drawn = null;
  for (let attempt = 0; attempt <= MAX_RETRIES; attempt += 1) {
    const tags = { kind: attempt === 0 ? 'first' : 'retry', iv };
    if (attempt > 0) retries.add(1);
    const sent = postSpin(user, { key, body, tags });
    key = sent.key;
    const res = sent.res;
    record(res, SPIN_STATUSES, tags);
    const out = checkSpin(res, tags, data.limits);
    count(res, out, iv);
    if (res.status === 200) {
      drawn = out;
      if (attempt > 0 && out !== null && out.replayed === true) retriesReplayed.add(1);
      break;
    }
    if (CAPACITY) break; // saturation: no retries, the next iteration is the next spin
    if (res.status !== 0 && res.status !== 503) break; // 429 or a wrong answer: no retry
    if (attempt < MAX_RETRIES) sleep(backoffS(attempt, res));
  }

  if (!CAPACITY && drawn !== null && Math.random() < REPLAY_RATIO) {
    const tags = { kind: 'replay', iv };
    const { res } = postSpin(user, { key, body, tags });
    record(res, SPIN_STATUSES, tags);
    const again = checkSpin(res, tags, data.limits);
    count(res, again, iv);
    if (res.status === 200) checkReplay(drawn, again, tags);
  }
}
