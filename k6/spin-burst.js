// k6/spin-burst.js: the sale opens. Arrivals climb from 0 to far above what
// the service can draw (about 10-15k spins/s on 2 cores) within seconds, stay
// there, then fall back to an ordinary rate. Every arrival is a different user
// (random among USERS) spinning once with a fresh Idempotency-Key.
//
// What must hold: the service answers quickly and honestly. Every answer is
// 200 (drawn), 429 (refused) or 503 (shed, with Retry-After), as problem+json
// when it is an error; never another status, never a 5xx other than 503.
// Answered requests stay fast even at peak: the excess is refused or dropped,
// not queued. Once the wave has passed ("after" phase) latency is back to normal
// and nothing goes unanswered.
//
// Environment (defaults in brackets):
//   PEAK_RATE [30000]  arrivals/s at peak     RAMP [5s]   0 -> PEAK_RATE
//   HOLD [20s]         time at peak           AFTER_RATE [1000] arrivals/s after
//   AFTER [15s]        time at AFTER_RATE     USERS [1000000] distinct users
//   MAX_VUS [500] PRE_VUS [MAX_VUS]           VUs (bound the requests in flight;
//                                             all made before the start)
//   P95_MS [500] P99_MS [1500]                latency of answered spins, whole run
//   AFTER_MED_MS [20] AFTER_P99_MS [500]      latency once the wave has passed
//   MAX_NO_ANSWER [0.05]                      share of spins unanswered (timeouts)
//   plus PRIZEWHEEL_URL, CAMPAIGN, REQ_TIMEOUT, RUN_ID (lib/spin.js) and the
//   PRIZEWHEEL_JWT_* variables (lib/token.js).

import http from 'k6/http';
import exec from 'k6/execution';
import {
  SPIN_STATUSES,
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

const PEAK_RATE = envNumber('PEAK_RATE', 30000);
const AFTER_RATE = envNumber('AFTER_RATE', 1000);
const RAMP = __ENV.RAMP || '5s';
const HOLD = __ENV.HOLD || '20s';
const DROP = '2s';
const AFTER = __ENV.AFTER || '15s';
const USERS = envNumber('USERS', 1000000);
const P95_MS = envNumber('P95_MS', 500);
const P99_MS = envNumber('P99_MS', 1500);
const AFTER_MED_MS = envNumber('AFTER_MED_MS', 20);
const AFTER_P99_MS = envNumber('AFTER_P99_MS', 500);
const MAX_NO_ANSWER = envNumber('MAX_NO_ANSWER', 0.05);

// Phase boundaries (seconds since the scenario started). The first SETTLE
// seconds after the drop belong to no phase: the backlog of the peak drains.
const SETTLE_S = 5;
const PEAK_FROM = durationS(RAMP);
const DROP_FROM = PEAK_FROM + durationS(HOLD);
const AFTER_FROM = DROP_FROM + durationS(DROP) + SETTLE_S;

http.setResponseCallback(http.expectedStatuses(...SPIN_STATUSES));

export const options = {
  scenarios: {
    burst: {
      executor: 'ramping-arrival-rate',
      startRate: 0,
      timeUnit: '1s',
      preAllocatedVUs: envNumber('PRE_VUS', envNumber('MAX_VUS', 500)),
      maxVUs: envNumber('MAX_VUS', 500),
      stages: [
        { target: PEAK_RATE, duration: RAMP },
        { target: PEAK_RATE, duration: HOLD },
        { target: AFTER_RATE, duration: DROP },
        { target: AFTER_RATE, duration: AFTER },
      ],
      gracefulStop: '10s',
    },
  },
  thresholds: {
    // Answered spins (200/429/503) are fast, even at peak.
    'http_req_duration{name:spin,expected_response:true}': [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    // Once the wave has passed the service is itself again. The median, not the
    // p95: k6 sharing the service's cores adds tens of ms of its own jitter.
    'http_req_duration{name:spin,phase:after,expected_response:true}': [
      `med<${AFTER_MED_MS}`,
      `p(99)<${AFTER_P99_MS}`,
    ],
    'no_answer{phase:after}': ['rate<0.001'],
    // Honest answers only.
    unexpected_status: ['rate<0.001'],
    server_errors: ['count==0'],
    problem_json: ['rate==1'],
    checks: ['rate>0.999'],
    // Unexpected statuses plus unanswered requests.
    'http_req_failed{name:spin}': [`rate<${(MAX_NO_ANSWER + 0.001).toFixed(4)}`],
    no_answer: [`rate<${MAX_NO_ANSWER}`],
    // Listed for the summary only.
    ...statusCounters('spin', SPIN_STATUSES),
    'http_reqs{name:spin,phase:peak}': ['count>=0'],
    'http_reqs{name:spin,phase:after}': ['count>=0'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  return preflight();
}

function phase() {
  const s = (Date.now() - exec.scenario.startTime) / 1000;
  if (s < PEAK_FROM) return 'ramp';
  if (s < DROP_FROM) return 'peak';
  if (s < AFTER_FROM) return 'drop';
  return 'after';
}

export default function (data) {
  const tags = { phase: phase() };
  const { res } = postSpin(userId(data.runId, 'b', randomInt(USERS)), { tags });
  record(res, SPIN_STATUSES, tags);
  checkSpin(res, tags, data.limits);
}
