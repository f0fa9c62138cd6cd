#!/usr/bin/env python3
"""bench/soak-report.py WORKDIR OUTFILE: the table and verdict of bench/soak.sh.

Reads what soak.sh left in WORKDIR: meta.env (facts of the run), soak.json
(k6 --summary-export of k6/soak.js), intervals.tsv (one line per interval:
index, time ms, RSS kB, Redis used_memory, users, records, stream entries,
stream bytes) and fast.tsv (every 5 s: time ms, RSS kB, lag entries, lag age s).
Prints a markdown report, writes it to OUTFILE, exits 1 when a promise fails.

Bounds (environment, defaults in brackets): RSS_BOUND_MIB [16], P99_DRIFT [1.5],
P99_SLACK_MS [2], LAG_BOUND_S [30], REDIS_SLACK_PCT [10], REDIS_SLACK_MIB [4].
"""

import json
import os
import statistics
import sys

MIB = 1024 * 1024


def env_float(name, default):
    raw = os.environ.get(name, "")
    return float(raw) if raw else default


RSS_BOUND_MIB = env_float("RSS_BOUND_MIB", 16)
P99_DRIFT = env_float("P99_DRIFT", 1.5)
P99_SLACK_MS = env_float("P99_SLACK_MS", 2)
LAG_BOUND_S = env_float("LAG_BOUND_S", 30)
REDIS_SLACK_PCT = env_float("REDIS_SLACK_PCT", 10)
REDIS_SLACK_MIB = env_float("REDIS_SLACK_MIB", 4)

QUOTA_CODES = ("spin_quota_exhausted", "daily_spin_quota_exhausted")


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key:
                meta[key] = value
    return meta


def read_tsv(path):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                rows.append([float(p) for p in parts])
    return rows


def num(meta, key, default=0.0):
    try:
        return float(meta.get(key, ""))
    except ValueError:
        return default


def thirds(values):
    """First and last third of a list (at least one element each)."""
    n = len(values)
    k = max(1, n // 3)
    return values[:k], values[n - k:]


def fmt_int(x):
    return f"{x:,.0f}"


def main():
    work, outfile = sys.argv[1], sys.argv[2]
    meta = read_meta(os.path.join(work, "meta.env"))
    with open(os.path.join(work, "soak.json")) as f:
        metrics = json.load(f)["metrics"]
    ivs = read_tsv(os.path.join(work, "intervals.tsv"))
    fast = read_tsv(os.path.join(work, "fast.tsv"))

    def metric(name, field, default=0.0):
        return metrics.get(name, {}).get(field, default)

    interval_s = num(meta, "interval_s")
    t0 = num(meta, "t0_ms")
    base_mem = num(meta, "base_used_memory")
    base_rss = num(meta, "base_rss_kb")

    # Footprint model of this run: bytes per user and per record, measured with
    # MEMORY USAGE over the campaign's bucket hashes at the end.
    users_end = num(meta, "users")
    records_end = num(meta, "records")
    per_user = num(meta, "user_bytes") / max(users_end, 1)
    per_record = num(meta, "record_bytes") / max(records_end, 1)

    out = []
    p = out.append
    cap = []
    if meta.get("wrk_rps"):
        cap.append(f"wrk {fmt_int(num(meta, 'wrk_rps'))} spins/s (the service alone)")
    if meta.get("k6_capacity"):
        cap.append(f"k6 {fmt_int(num(meta, 'k6_capacity'))} spins/s (k6 on the same cores)")
    p(f"prizewheel soak, {meta.get('date', '?')}, {meta.get('cores', '?')} cores: "
      f"{fmt_int(num(meta, 'rate'))} visits/s for {num(meta, 'duration_s') / 60:g} min "
      f"in intervals of {interval_s:g} s")
    if cap:
        p(f"capacity: {'; '.join(cap)}; rate = {meta.get('share', '?')} × "
          f"{meta.get('capacity_by', '?')}")
    else:
        p(f"rate given ({meta.get('capacity_by', '?')})")
    if meta.get("tables"):
        p(f"service tables: {meta['tables']}")
    p("")
    p("| interval | end s | req/s | p50 ms | p99 ms | quota 429 | errors | RSS MiB "
      "| Redis MiB | Δ Redis MiB | explained MiB | users | records | stream | lag max | lag age max s |")
    p("| " + " | ".join(["---"] * 16) + " |")

    p99s, rss_series, residuals = [], [], []
    rows = []
    for row in ivs:
        i, ts, rss, used, users, records, slen, sbytes = row[:8]
        iv = f"i{int(i):03d}"
        reqs = metric(f"http_reqs{{name:spin,iv:{iv}}}", "count")
        trend = metrics.get(f"http_req_duration{{name:spin,expected_response:true,iv:{iv}}}", {})
        p50, p99 = trend.get("med", float("nan")), trend.get("p(99)", float("nan"))
        q = metric(f"soak_quota{{iv:{iv}}}", "count")
        err = metric(f"soak_errors{{iv:{iv}}}", "count")
        start_ms, end_ms = t0 + i * interval_s * 1000, t0 + (i + 1) * interval_s * 1000
        window = [r for r in fast if start_ms <= r[0] < end_ms + 2500]
        lag_max = max((r[2] for r in window), default=0)
        age_max = max((r[3] for r in window), default=0)
        grown = used - base_mem
        explained = users * per_user + records * per_record + sbytes
        residuals.append(grown - explained)
        p99s.append(p99)
        rss_series.append(rss)
        rows.append((i, lag_max, age_max))
        p(f"| {int(i) + 1} | {(ts - t0) / 1000:.0f} | {reqs / interval_s:,.0f} | {p50:.2f} | {p99:.2f} "
          f"| {q:,.0f} | {err:,.0f} | {rss / 1024:.1f} | {used / MIB:.1f} | {grown / MIB:.2f} "
          f"| {explained / MIB:.2f} | {users:,.0f} | {records:,.0f} | {slen:,.0f} "
          f"| {lag_max:,.0f} | {age_max:.1f} |")
    p("")

    verdict = []
    failed = False

    def judge(ok, text):
        nonlocal failed
        failed = failed or not ok
        verdict.append(f"- {'PASS' if ok else 'FAIL'} {text}")

    # 1. Answers: nothing but draws, replays and quota refusals.
    codes = {}
    for name, m in metrics.items():
        if name.startswith("soak_answers{code:"):
            codes[name[len("soak_answers{code:"):-1]] = m.get("count", 0)
    by_status = {s: metric(f"http_reqs{{name:spin,status:{s}}}", "count") for s in (200, 429, 503)}
    other = {c: n for c, n in codes.items() if n and c not in ("draw", "replay") + QUOTA_CODES}
    total_errors = metric("soak_errors", "count")
    dropped = metric("dropped_iterations", "count")
    answers = ", ".join(f"{c} {n:,.0f}" for c, n in sorted(codes.items()) if n)
    judge(total_errors == 0 and not other,
          f"answers: {answers}; errors other than quota answers: {total_errors:,.0f}"
          + (f" ({', '.join(f'{c} {n:,.0f}' for c, n in other.items())})" if other else "")
          + f"; by status: " + ", ".join(f"{s} {n:,.0f}" for s, n in by_status.items())
          + f"; unexpected status {metric('unexpected_status', 'passes'):,.0f}"
          + f", no answer {metric('no_answer', 'passes'):,.0f}"
          + f", replay mismatches {metric('replay_mismatch', 'count'):,.0f}")
    judge(num(meta, "k6_status", -1) == 0,
          f"k6 thresholds (k6/soak.js): exit status {meta.get('k6_status', '?')}; "
          f"dropped iterations {dropped:,.0f}; checks {100 * metric('checks', 'value'):.3f} %")

    # 2. Service memory: the last third against the first.
    if rss_series:
        first, last = thirds(rss_series)
        a, b = statistics.mean(first) / 1024, statistics.mean(last) / 1024
        judge(b - a <= RSS_BOUND_MIB,
              f"service RSS: {base_rss / 1024:.1f} MiB before, mean {a:.1f} MiB in the first third, "
              f"{b:.1f} MiB in the last ({b - a:+.1f} MiB, bound +{RSS_BOUND_MIB:g}); "
              f"max {max(rss_series) / 1024:.1f} MiB")

    # 3. Latency: median per-interval p99, last third against the first.
    good = [x for x in p99s if x == x]
    if good:
        first, last = thirds(good)
        a, b = statistics.median(first), statistics.median(last)
        judge(b <= P99_DRIFT * a + P99_SLACK_MS,
              f"p99: median of the per-interval p99s {a:.2f} ms in the first third, {b:.2f} ms in the "
              f"last (bound {P99_DRIFT:g} × first + {P99_SLACK_MS:g} ms); whole run p99 "
              f"{metric('http_req_duration{name:spin,expected_response:true}', 'p(99)'):.2f} ms")

    # 4. Settlement lag.
    lags = [r[2] for r in fast]
    ages = [r[3] for r in fast]
    drain = num(meta, "drain_s", -1)
    judge(max(ages, default=0) <= LAG_BOUND_S and drain >= 0,
          f"settlement lag: max {max(lags, default=0):,.0f} entries, oldest unsettled entry at most "
          f"{max(ages, default=0):.1f} s old (bound {LAG_BOUND_S:g} s, gauges sampled every 5 s); "
          + (f"caught up {drain:g} s after the run" if drain >= 0 else "NOT caught up after the run")
          + f"; dead letters {num(meta, 'dead_letters'):,.0f}")

    # 5. Redis memory: growth against counters + records (+ the stream, bounded by the lag).
    if ivs:
        last = ivs[-1]
        grown = last[3] - base_mem
        explained = last[4] * per_user + last[5] * per_record + last[7]
        slack = max(REDIS_SLACK_PCT / 100 * abs(grown), REDIS_SLACK_MIB * MIB)
        judge(abs(grown - explained) <= slack,
              f"Redis used_memory grew {grown / MIB:.2f} MiB; users × bytes/user + records × bytes/record "
              f"+ stream = {fmt_int(last[4])} × {per_user:.1f} + {fmt_int(last[5])} × {per_record:.1f} + "
              f"{last[7] / MIB:.2f} MiB = {explained / MIB:.2f} MiB; unexplained {(grown - explained) / MIB:+.2f} MiB "
              f"(bound ± {slack / MIB:.2f} MiB: {REDIS_SLACK_PCT:g} % or {REDIS_SLACK_MIB:g} MiB); "
              f"unexplained per interval from {min(residuals) / MIB:+.2f} to {max(residuals) / MIB:+.2f} MiB")
    p(f"bytes per user {per_user:.1f} ({fmt_int(users_end)} users in {meta.get('user_keys', '?')} hashes), "
      f"per record {per_record:.1f} ({fmt_int(records_end)} records in {meta.get('record_keys', '?')} hashes); "
      f"{meta.get('hashtable_buckets', '?')} hashes not in listpack encoding; "
      f"README model (numeric ids, one spin each): 12.4 and 46.5")
    draws = codes.get("draw", 0)
    ledger, awarded = num(meta, "ledger_rows", -1), num(meta, "awarded", -2)
    judge(ledger == awarded and records_end == awarded,
          f"ledger: {fmt_int(ledger)} rows settled, {fmt_int(awarded)} awarded in Redis, "
          f"{fmt_int(records_end)} idempotency records, {fmt_int(draws)} draws answered to k6")
    p("")
    p("verdict:")
    out.extend(verdict)
    p(f"=> {'FAIL' if failed else 'PASS'}")

    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    with open(outfile, "w") as f:
        f.write(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
