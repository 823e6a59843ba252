#!/usr/bin/env python3
"""Prints the bench's table from the `key value` lines run.sh recorded: each figure as the
range over the runs, the ratios to the anchors and limits, and whether each goal is met.
Usage: table.py RESULTS"""
import collections
import sys

vals = collections.defaultdict(list)
for line in open(sys.argv[1]):
    key, value = line.split()
    vals[key].append(float(value))


def rng(key, fmt="{:.2f}"):
    v = vals.get(key)
    if not v:
        return "-"
    lo, hi = min(v), max(v)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def ratio(a, b):
    """The range of a/b taken run by run (the same run's figures belong together)."""
    if not vals.get(a) or not vals.get(b):
        return None
    r = [x / y for x, y in zip(vals[a], vals[b]) if y]
    return (min(r), max(r)) if r else None


def show(r):
    if r is None:
        return "-"
    return f"{r[0]:.2f}x" if f"{r[0]:.2f}" == f"{r[1]:.2f}" else f"{r[0]:.2f}-{r[1]:.2f}x"


def verdict(ok):
    return "ok" if ok else "NOT MET"


rows = []
hs = ratio("handshake_ms.bars", "limit_handshake_ms")
rows.append((
    "full mutual-TLS handshake, server CPU ms (openssl s_time -new)",
    rng("handshake_ms.bars", "{:.3f}"), rng("handshake_ms.nginx", "{:.3f}"), rng("handshake_ms.haproxy", "{:.3f}"),
    "RSA-2048 sign + 2 verifies + 2 X25519: " + rng("limit_handshake_ms", "{:.3f}"),
    f"<= 1.25x limit: bars/limit {show(hs)}, bars/nginx {show(ratio('handshake_ms.bars', 'handshake_ms.nginx'))}",
    hs is not None and hs[1] <= 1.25,
))
ka = ratio("keepalive_us.bars", "keepalive_us.haproxy")
rows.append((
    "keep-alive GET /metadata, server CPU us/request (32 connections)",
    rng("keepalive_us.bars"), rng("keepalive_us.nginx"), rng("keepalive_us.haproxy"), "",
    f"<= HAProxy: bars/HAProxy {show(ka)}, bars/nginx {show(ratio('keepalive_us.bars', 'keepalive_us.nginx'))}",
    ka is not None and ka[1] <= 1.0,
))
for proto in ("h1", "h2"):
    d = ratio(f"durable_acks.{proto}", "limit_fsync")
    p99 = vals.get(f"durable_p99.{proto}", [])
    rows.append((
        f"durable $process-message {proto}, 64 senders: acks/s (server CPU us/ack)",
        f"{rng(f'durable_acks.{proto}', '{:.0f}')} ({rng(f'durable_us.{proto}', '{:.0f}')})", "(no anchor)", "(no anchor)",
        "serial 20 KB fdatasync/s: " + rng("limit_fsync", "{:.0f}"),
        f">= limit: acks/limit {show(d)}",
        d is not None and d[0] >= 1.0,
    ))
    rows.append((
        f"durable $process-message {proto}, 64 senders: p99 ms",
        rng(f"durable_p99.{proto}", "{:.1f}"), "", "", "", "< 25 ms",
        bool(p99) and max(p99) < 25,
    ))
idle = ratio("idle_kb.bars", "idle_kb.nginx")
rows.append((
    "idle mutual-TLS connection, server RSS KB",
    rng("idle_kb.bars", "{:.1f}"), rng("idle_kb.nginx", "{:.1f}"), rng("idle_kb.haproxy", "{:.1f}"), "",
    f"<= nginx: bars/nginx {show(idle)}",
    idle is not None and idle[1] <= 1.0,
))

head = ("work", "bars-receiver", "nginx", "HAProxy", "limit", "goal and ratios", "")
widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(6)]
print()
print("  ".join(str(h).ljust(w) for h, w in zip(head, widths)))
for r in rows:
    print("  ".join(str(c).ljust(w) for c, w in zip(r[:6], widths)) + "  " + verdict(r[6]))
if vals.get("keepalive_us.bars_log"):
    print(f"\nwith the access log on (log.level info, the receiver's default; not in the goals above):"
          f" keep-alive {rng('keepalive_us.bars_log')} us/request"
          f" (bars/HAProxy {show(ratio('keepalive_us.bars_log', 'keepalive_us.haproxy'))},"
          f" {show(ratio('keepalive_us.bars_log', 'keepalive_us.bars'))} of warn);"
          f" handshake {rng('handshake_ms.bars_log', '{:.3f}')} ms"
          f" ({show(ratio('handshake_ms.bars_log', 'handshake_ms.bars'))} of warn)")
met = sum(1 for r in rows if r[6])
print(f"\ngoals met: {met} of {len(rows)}; keep-alive requests/s: bars {rng('keepalive_rps.bars', '{:.0f}')}, "
      f"nginx {rng('keepalive_rps.nginx', '{:.0f}')}, HAProxy {rng('keepalive_rps.haproxy', '{:.0f}')}")
