#!/usr/bin/env python3
"""bench/soak-report.py WORKDIR OUTFILE: the table and verdict of bench/soak.sh.

Reads what soak.sh left in WORKDIR: meta.env (facts of the run), soak.json
(k6 --summary-export of k6/soak.js), intervals.tsv (one line per interval:
index, time ms, RSS kB, Redis used_memory, users, records, stream entries,
stream bytes, service CPU ticks, k6 CPU ticks, connections), histogram-*.txt
(the service's spin latency histogram at the start and at each interval's end) and fast.tsv (every 5 s: time ms, RSS kB, lag entries, lag age s).
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


def read_histogram(path):
    """{le: count} of a spin_histogram file, summed over the series (statuses)."""
    buckets = {}
    if not os.path.exists(path):
        return buckets
    with open(path) as f:
        for line in f:
            labels, _, value = line.rpartition(" ")
            le = labels.split('le="', 1)[1].split('"', 1)[0] if 'le="' in labels else None
            if le is None:
                continue
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(value)
    return buckets


def histogram_quantile(before, after, q):
    """The q-quantile in ms of what was observed between two cumulative
    histograms, interpolated linearly within its bucket (as Prometheus's
    histogram_quantile does); NaN when nothing was observed."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cum in zip(bounds, counts):
        if cum >= rank:
            if bound == float("inf"):
                return lower * 1000
            inside = cum - below
            share = (rank - below) / inside if inside > 0 else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, cum
    return float("nan")


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
        cap.append(f"k6 closed-loop {fmt_int(num(meta, 'k6_capacity'))} spins/s (k6 on the same cores)")
    p(f"prizewheel soak, {meta.get('date', '?')}, {meta.get('cores', '?')} cores: "
      f"{fmt_int(num(meta, 'rate'))} visits/s for {num(meta, 'duration_s') / 60:g} min "
      f"in intervals of {interval_s:g} s")
    steps = [meta[k] for k in sorted((k for k in meta if k[5:].isdigit() and k.startswith("step_")), key=lambda k: int(k[5:]))]
    if steps:
        cap.append(f"the soak's own traffic in steps of {meta.get('step_seconds', '?')} s "
                   f"({'; '.join(steps)}): {fmt_int(num(meta, 'capacity'))} visits/s")
    if cap:
        p(f"capacity: {'; '.join(cap)}; rate = {meta.get('share', '?')} × "
          f"{meta.get('capacity_by', '?')}")
    else:
        p(f"rate given ({meta.get('capacity_by', '?')})")
    if meta.get("tables"):
        p(f"service tables: {meta['tables']}")
    p("")
    p("k6 p50/p99: as k6 measures them (answered spins); service p99: the service's own "
      "http.server.request.duration of spins in the same interval (every status; from its "
      "histogram, interpolated within a bucket); CPU: share of one core over the interval")
    p("")
    p("| interval | end s | req/s | k6 p50 ms | k6 p99 ms | service p99 ms | k6 CPU % | service CPU % "
      "| connections | quota 429 | errors | RSS MiB "
      "| Redis MiB | Δ Redis MiB | explained MiB | users | records | stream | lag max | lag age max s |")
    p("| " + " | ".join(["---"] * 20) + " |")

    tck = num(meta, "clk_tck", 100)
    prev_hist = read_histogram(os.path.join(work, "histogram-start.txt"))
    prev_ticks = (num(meta, "server_ticks0"), num(meta, "k6_ticks0"))
    p99s, server_p99s, k6_cpus, rss_series, residuals = [], [], [], [], []
    rows = []
    for row in ivs:
        i, ts, rss, used, users, records, slen, sbytes = row[:8]
        server_ticks, k6_ticks, conns = (row[8:11] + [float("nan")] * 3)[:3]
        hist = read_histogram(os.path.join(work, f"histogram-{int(i)}.txt"))
        server_p99 = histogram_quantile(prev_hist, hist, 0.99) if hist else float("nan")
        prev_hist = hist or prev_hist
        cpu = [100 * (now - before) / tck / interval_s for now, before in zip((server_ticks, k6_ticks), prev_ticks)]
        prev_ticks = (server_ticks, k6_ticks)
        server_p99s.append(server_p99)
        k6_cpus.append(cpu[1])
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
          f"| {server_p99:.2f} | {cpu[1]:.0f} | {cpu[0]:.0f} | {conns:,.0f} "
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

    # 3. Latency: median per-interval p99, last third against the first, both as
    # k6 measures it (what a client sees, including k6's own delays) and as the
    # service measures it (the service's part alone).
    def drift(series, what):
        good = [x for x in series if x == x]
        if not good:
            judge(False, f"{what}: no figures")
            return
        first, last = thirds(good)
        a, b = statistics.median(first), statistics.median(last)
        judge(b <= P99_DRIFT * a + P99_SLACK_MS,
              f"{what}: median of the per-interval p99s {a:.2f} ms in the first third, {b:.2f} ms in the "
              f"last (bound {P99_DRIFT:g} × first + {P99_SLACK_MS:g} ms); highest {max(good):.2f} ms")

    drift(p99s, "p99 as k6 measures it")
    drift(server_p99s, "p99 as the service measures it")
    busy = [c for c in k6_cpus if c == c]
    if busy:
        verdict.append(f"- note: k6 used {min(busy):.0f}–{max(busy):.0f} % of a core per interval "
                       f"(the machine has {meta.get('cores', '?')}); near 100 % its own figures include "
                       "its waits for CPU")

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
      f"capacity model of docs/operations.md (numeric ids, one spin each): 12.4 and 46.5")
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
