// k6/steady-sale.js: the hours after the opening. Spins arrive at a constant
// RATE for DURATION from a pool of users who each come back several times, so
// their quotas run out (mega-sale: 10 spins, 3 a day; past that 429
// spin_quota_exhausted / daily_spin_quota_exhausted, which is expected).
//
// Each iteration is one user's visit:
//   - sometimes (BROWSE_RATIO) the app first loads GET /v1/campaigns/{id};
//   - one spin with a fresh Idempotency-Key, sometimes with a client context
//     body; on a timeout or a 503 the client retries with the SAME key and body
//     (after Retry-After, capped), up to MAX_RETRIES times;
//   - sometimes (REPLAY_RATIO) after a 200 the client sends the same request
//     again (a double tap, a lost answer): that 200 must say replayed: true with
//     the same spin_id and prize.
//
// Environment (defaults in brackets):
//   RATE [1000] visits/s                     DURATION [2m]
//   SPINS_PER_USER [4] mean visits per user; sets USERS [RATE*DURATION/SPINS_PER_USER]
//   BROWSE_RATIO [0.2] CONTEXT_RATIO [0.3] REPLAY_RATIO [0.02] MAX_RETRIES [3]
//   PRE_VUS [100] MAX_VUS [1000]
//   P95_MS [50] P99_MS [200]                 latency of answered spins
//   plus PRIZEWHEEL_URL, CAMPAIGN, REQ_TIMEOUT, RUN_ID (lib/spin.js) and the
//   PRIZEWHEEL_JWT_* variables (lib/token.js).

import http from 'k6/http';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import {
  backoffS,
  orderContext,
  SPIN_STATUSES,
  checkCampaign,
  checkReplay,
  checkSpin,
  durationS,
  envNumber,
  getCampaign,
  postSpin,
  preflight,
  randomInt,
  record,
  statusCounters,
  userId,
} from './lib/spin.js';

const RATE = envNumber('RATE', 1000);
const DURATION = __ENV.DURATION || '2m';
const SPINS_PER_USER = envNumber('SPINS_PER_USER', 4);
const USERS = envNumber('USERS', Math.max(1, Math.ceil((RATE * durationS(DURATION)) / SPINS_PER_USER)));
const BROWSE_RATIO = envNumber('BROWSE_RATIO', 0.2);
const CONTEXT_RATIO = envNumber('CONTEXT_RATIO', 0.3);
const REPLAY_RATIO = envNumber('REPLAY_RATIO', 0.02);
const MAX_RETRIES = envNumber('MAX_RETRIES', 3);
const P95_MS = envNumber('P95_MS', 50);
const P99_MS = envNumber('P99_MS', 200);

const retries = new Counter('spin_retries');
const retriesAnswered = new Counter('spin_retries_answered_200');
// Retries whose 200 was a replay: the attempt that timed out or got 503 had drawn.
const retriesReplayed = new Counter('spin_retries_replayed');

http.setResponseCallback(http.expectedStatuses(...SPIN_STATUSES));

export const options = {
  scenarios: {
    sale: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: envNumber('PRE_VUS', 100),
      maxVUs: envNumber('MAX_VUS', 1000),
      gracefulStop: '15s',
    },
  },
  thresholds: {
    'http_req_duration{name:spin,expected_response:true}': [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    'http_req_duration{name:campaign,expected_response:true}': [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    // Anything but 200/429/503 on a spin or a campaign view.
    unexpected_status: ['rate<0.001'],
    server_errors: ['count==0'],
    no_answer: ['rate<0.001'],
    problem_json: ['rate==1'],
    replay_mismatch: ['count==0'],
    checks: ['rate>0.999'],
    // The load was really offered: k6 kept up with the arrivals (< 1% dropped).
    dropped_iterations: [`count<${Math.max(1, Math.ceil(RATE * durationS(DURATION) * 0.01))}`],
    // Listed for the summary only.
    ...statusCounters('spin', SPIN_STATUSES),
    'http_reqs{name:campaign}': ['count>=0'],
    'http_reqs{name:spin,kind:retry}': ['count>=0'],
    'http_reqs{name:spin,kind:replay}': ['count>=0'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  const data = preflight();
  console.log(
    `steady-sale: ${RATE} spins/s for ${DURATION}, ${USERS} users (run ${data.runId}), ` +
      `quota ${data.limits.total} total / ${data.limits.daily || '-'} a day`,
  );
  return data;
}


export default function (data) {
  const user = userId(data.runId, 's', randomInt(USERS));

  if (Math.random() < BROWSE_RATIO) {
    const res = getCampaign(user);
    record(res, SPIN_STATUSES);
    checkCampaign(res);
  }

  const body = Math.random() < CONTEXT_RATIO ? orderContext() : null;
  let key;
  let drawn = null;
  for (let attempt = 0; attempt <= MAX_RETRIES; attempt += 1) {
    const tags = { kind: attempt === 0 ? 'first' : 'retry' };
    if (attempt > 0) retries.add(1);
    const sent = postSpin(user, { key, body, tags });
    key = sent.key;
    const res = sent.res;
    record(res, SPIN_STATUSES, tags);
    const out = checkSpin(res, tags, data.limits);
    if (res.status === 200) {
      drawn = out;
      if (attempt > 0) {
        retriesAnswered.add(1);
        if (out !== null && out.replayed === true) retriesReplayed.add(1);
      }
      break;
    }
    if (res.status !== 0 && res.status !== 503) break; // 429 or a wrong answer: no retry
    if (attempt < MAX_RETRIES) sleep(backoffS(attempt, res));
  }

  if (drawn !== null && Math.random() < REPLAY_RATIO) {
    const tags = { kind: 'replay' };
    const { res } = postSpin(user, { key, body, tags });
    record(res, SPIN_STATUSES, tags);
    const again = checkSpin(res, tags, data.limits);
    if (res.status === 200) checkReplay(drawn, again, tags);
  }
}
