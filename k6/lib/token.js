// k6/lib/token.js: HS256 bearer tokens minted inside k6, the way prizewheel's
// identity provider would sign them.
//
// Environment:
//   PRIZEWHEEL_JWT_SECRET    the service's HS256 secret (required, >= 32 bytes)
//   PRIZEWHEEL_JWT_ISSUER    sets `iss` when the service checks it
//   PRIZEWHEEL_JWT_AUDIENCE  sets `aud` when the service checks it
//
// Tokens live for an hour; each VU keeps a bounded cache so that a user who
// spins several times is signed once, not per request.

import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

const SECRET = __ENV.PRIZEWHEEL_JWT_SECRET || '';
const ISSUER = __ENV.PRIZEWHEEL_JWT_ISSUER || '';
const AUDIENCE = __ENV.PRIZEWHEEL_JWT_AUDIENCE || '';

if (SECRET.length < 32) {
  throw new Error(
    'PRIZEWHEEL_JWT_SECRET must be set to the service secret (at least 32 bytes); ' +
      'bash k6/run.sh reads it from .data/jwt-secret when unset',
  );
}

export const TOKEN_TTL_S = 3600;
// Reuse a cached token only while it has at least this long left.
const MIN_LEFT_S = 300;
// Entries per VU; the oldest is dropped first (a Map iterates in insertion order).
// Small on purpose: every VU holds its own, an open-model scenario runs hundreds
// of VUs, and their caches are live heap that k6's garbage collector walks over
// and over (at 2,000 entries a VU, a soak's k6 grew to 1.5 GB in 4 minutes and
// its CPU with it). A user's visits rarely land on the same VU anyway.
const CACHE_MAX = Number(__ENV.TOKEN_CACHE_SIZE || 256);

const HEADER_HS256 = b64json({ alg: 'HS256', typ: 'JWT' });

function b64json(value) {
  return encoding.b64encode(JSON.stringify(value), 'rawurl');
}

function nowS() {
  return Math.floor(Date.now() / 1000);
}

/** The claims prizewheel expects, plus `extra` (which may override any). */
export function claimsFor(user, extra) {
  const claims = { sub: user, exp: nowS() + TOKEN_TTL_S };
  if (ISSUER) claims.iss = ISSUER;
  if (AUDIENCE) claims.aud = AUDIENCE;
  return Object.assign(claims, extra || {});
}

/** Signs `claims` with HS256 (or with `secret` when given). */
export function signHS256(claims, secret) {
  const input = `${HEADER_HS256}.${b64json(claims)}`;
  const sig = crypto.hmac('sha256', secret || SECRET, input, 'base64rawurl');
  return `${input}.${sig}`;
}

/** A token with an arbitrary header, unsigned or signed as asked (abuse cases). */
export function forge(header, claims, signature) {
  return `${b64json(header)}.${b64json(claims)}.${signature || ''}`;
}

const cache = new Map();

/** A valid token for `user`, from this VU's cache when it is fresh enough. */
export function tokenFor(user) {
  const hit = cache.get(user);
  if (hit && hit.exp - nowS() >= MIN_LEFT_S) {
    return hit.token;
  }
  const claims = claimsFor(user);
  const token = signHS256(claims);
  if (hit) {
    cache.delete(user);
  } else if (cache.size >= CACHE_MAX) {
    cache.delete(cache.keys().next().value);
  }
  cache.set(user, { token, exp: claims.exp });
  return token;
}
