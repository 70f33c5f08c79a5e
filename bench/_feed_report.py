"""The Markdown section of bench/feed.py: its windows' figures as tables and verdicts."""

from __future__ import annotations

import argparse
import statistics
from typing import Any


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")



def summarize(windows: list[Any], tmux: list[float], args: argparse.Namespace, settled: float) -> str:
    """The section's Markdown from bench/feed.py's windows (quiet and viewers, in run order)."""
    quiet = [w for w in windows if w.label == "quiet"]
    busy = [w for w in windows if w.label == "viewers"]
    lines = [f"### Live feed at {args.devices:,} devices: {args.viewers} viewers + an attached dashboard, "
             f"{args.churn:.0%} changing state each second",
             "",
             f"Command (as root): `python bench/feed.py --devices {args.devices} --viewers {args.viewers} "
             f"--viewer-nice {args.viewer_nice} --service-nice {getattr(args, 'service_nice', 0)} "
             + (" --slices" if getattr(args, "slices", False) else "")
             + (" --own-slice" if getattr(args, "own_slice", False) else "")
             + (" --postgres" if getattr(args, "postgres", False) else "")
             + f" --cycles {args.cycles} --quiet {args.quiet:g} "
             f"--presses {args.presses} --tmux {args.tmux}"
             + (f" --section {args.section}" if args.section != "feed" else "") + "` "
             f"(defaults: --interval {args.interval:g} --churn {args.churn:g} --down {args.down:g})",
             "",
             "Service: a separate process (Runtime + Publisher, as `wardtui serve --redis`), real ICMP to "
             f"127.x every {args.interval:g} s, "
             f"{'PostgreSQL' if getattr(args, 'postgres', False) else 'SQLite'} history, "
             f"{args.down:.0%} down and {args.churn:.0%} "
             "changing state each second (a wrapper prober turns replies into timeouts); "
             + ("history in a private PostgreSQL server (fsync off), " if getattr(args, "postgres", False)
                else "")
             + "a private "
             "redis-server on loopback. Windows alternate in one run: quiet (no viewer) and viewers "
             f"({args.viewers} headless LiveFeed processes + one real attached dashboard, WardApp over "
             "AttachedRuntime in the bench's process, driven by every kind of key). 2 shared cores: the "
             "service, Redis, the viewers and the dashboard all run on them"
             + (" (--slices --own-slice: in cgroups as systemd lays them out with packaging/wardtui.slice: "
                "the service at CPUWeight=400 beside Redis at the default weight in wardtui.slice "
                "(CPUWeight=400), PostgreSQL in system.slice, the viewers and the dashboard in "
                "user.slice; the three slices are peers)"
                if getattr(args, "own_slice", False) else
                " (--slices: in cgroups as systemd lays them out with packaging/wardtui.service in "
                "system.slice: the service at CPUWeight=400 beside Redis and PostgreSQL, the viewers "
                "and the dashboard in user.slice, the two slices of equal weight)"
                if getattr(args, "slices", False) else "")
             + ". Windows start once the "
             f"service's lag p99 has stayed under 1 s for 5 s after its first round ({settled:.0f} s after "
             f"the first {args.interval + 5:g} s here).",
             ""]
    # lag
    lines += ["| window | seconds | service lag p99 ms: median / p95 / max of per-second samples | "
              "checks/s | service CPU % of a core | service loop's wait for a CPU, ms/s | "
              "Redis CPU % of a core | snapshot kB / build ms "
              "(median, max) | store queue (median) / samples dropped for it per s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for i, w in enumerate(windows):
        lags = w.lags
        snaps = [r["snapshot_ms"] for r in w.service]
        size = [r["snapshot_bytes"] / 1000 for r in w.service]
        lines.append(f"| {i + 1}. {w.label} | {w.seconds:.0f} | "
                     + (f"{statistics.median(lags):.1f} / {pct(lags, 0.95):.1f} / {max(lags):.1f}"
                        if lags else "—")
                     + f" | {statistics.median(r.get('checks_per_s', 0) for r in w.service):.0f}"
                     + f" | {w.service_cpu_pct():.0f} | {w.service_waited_ms_per_s():.0f}"
                     + f" | {w.redis_cpu_s / w.seconds * 100:.1f} | "
                     + (f"{statistics.median(size):.0f} / {statistics.median(snaps):.0f}, {max(snaps):.0f}"
                        if snaps else "—")
                     + f" | {statistics.median(r.get('store_queue', 0) for r in w.service):.0f} / "
                     f"{w.dropped_per_s():.0f} |")
    q_lags = [x for w in quiet for x in w.lags]
    b_lags = [x for w in busy for x in w.lags]
    ratio = statistics.median(b_lags) / statistics.median(q_lags)
    ratio95 = pct(b_lags, 0.95) / pct(q_lags, 0.95)
    per_cycle = [statistics.median(b.lags) / statistics.median(q.lags)
                 for q, b in zip(quiet, busy, strict=False)]
    lines += ["", f"**Service lag p99, viewers / quiet (same run): {ratio:.2f}x of the medians, "
              f"{ratio95:.2f}x of the 95th percentiles** (target <= 1.2); per cycle (viewers over the quiet "
              "window before it): " + ", ".join(f"{r:.2f}x" for r in per_cycle) + "."]
    # latency
    lines += ["", "Event latency: every transition each viewer applied inside the window (the dashboard's "
              "own feed beside them), from Transition.at (the service's engine established it) and from "
              "its stream entry ID's time (the publisher took it off the engine's bus), to the moment the "
              "viewer applied it.",
              "",
              "| window | transitions/s | from Transition.at ms: p50 / p99 / max (all headless viewers) | "
              "from stream ID ms: p50 / p99 / max | dashboard's feed from .at: p50 / p99 / max | "
              "viewers' p99 spread (min-max) | reloads / losses |",
              "|---|---|---|---|---|---|---|"]
    for i, w in enumerate(windows):
        if w.label != "viewers":
            continue
        at, sid = w.all_from("from_at"), w.all_from("from_id")
        spread = [pct(v["from_at"], 0.99) for v in w.headless if v["from_at"]]
        lines.append(f"| {i + 1}. viewers | {w.transitions_per_s():.0f} | "
                     f"{pct(at, 0.5):.0f} / {pct(at, 0.99):.0f} / {max(at):.0f} | "
                     f"{pct(sid, 0.5):.0f} / {pct(sid, 0.99):.0f} / {max(sid):.0f} | "
                     f"{pct(w.dashboard_at, 0.5):.0f} / {pct(w.dashboard_at, 0.99):.0f} / "
                     f"{max(w.dashboard_at, default=float('nan')):.0f} | "
                     f"{min(spread):.0f}-{max(spread):.0f} | {w.reloads} / {w.losses} |")
    all_at = [x for w in busy for x in w.all_from("from_at")]
    lines += ["", "**Event latency service -> viewer over all viewers windows: "
              f"p99 {pct(all_at, 0.99):.0f} ms "
              f"from Transition.at** (target <= 250 ms); p50 {pct(all_at, 0.5):.0f}, max {max(all_at):.0f}."]
    # attach + first frame
    attach = [x for w in busy for x in w.attach_s]
    lines += ["", "Attach (LiveFeed.attach: heartbeat, inventory, snapshot) of the headless viewers, while "
              f"the others attach: median {statistics.median(attach):.2f} s, max {max(attach):.2f} s. "
              "Dashboard first frame in this process (Pilot, AttachedRuntime() -> attach -> rows painted, "
              f"{args.viewers} viewers attached): "
              + ", ".join(f"{w.first_frame_s:.2f}" for w in busy) + " s."]
    if tmux:
        lines += ["", "Real terminal (tmux 160x50), `wardtui --redis URL --site NAME --db ...` with no other "
                  "viewer, process start -> first device row in capture-pane: "
                  + ", ".join(f"{t:.2f}" for t in tmux) + " s (target <= 1 s)."]
    # keys
    kinds = list(busy[0].keys)
    lines += ["", "Keys of the attached dashboard (reflected = first compositor update showing the effect, "
              "as bench/dashboard_keys.py), one column per viewers window:", "",
              "| key | " + " | ".join(f"window {windows.index(w) + 1}: n / p50 / p95 / max ms" for w in busy)
              + " |",
              "|---|" + "---|" * len(busy)]
    for kind in kinds:
        cells = []
        for w in busy:
            v = w.keys.get(kind, [])
            lost = w.timeouts.get(kind, 0)
            cells.append((f"{len(v)} / {statistics.median(v):.0f} / {pct(v, 0.95):.0f} / {max(v):.0f}"
                          if v else "—") + (f" ({lost} > 5 s)" if lost else ""))
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    worst = max((k for k in kinds if "debounce" not in k),
                key=lambda k: pct([x for w in busy for x in w.keys.get(k, [])], 0.95))
    worst_v = [x for w in busy for x in w.keys.get(worst, [])]
    all_keys = [x for w in busy for k, v in w.keys.items() if "debounce" not in k for x in v]
    lines += ["", "**All keys (debounced filter excluded) over all windows: "
              f"p50 {statistics.median(all_keys):.0f} ms, "
              f"p95 {pct(all_keys, 0.95):.0f} ms. Slowest kind: '{worst}', p95 {pct(worst_v, 0.95):.0f} ms, "
              f"max {max(worst_v):.0f} ms** (target: every kind <= 100 ms at p95)."]
    # memory
    last = windows[-1].memory
    keys = ", ".join(f"{k.split(':')[-1]} {v / 1000:.1f} kB" for k, v in sorted(last["keys"].items()))
    lines += ["", f"Redis memory at the end: used {last['used_mb']:.1f} MB "
              f"(RSS {last['rss_mb']:.1f} MB, peak "
              f"{last['peak_mb']:.1f} MB); MEMORY USAGE of the site's keys: {keys}; the stream holds "
              f"{last['stream_len']:,} events. Each headless viewer process (median over all windows): "
              f"{statistics.median([v for w in busy for v in w.viewer_cpu_pct]):.0f} % of a core over its "
              "life (attach included), max RSS "
              f"{statistics.median([v for w in busy for v in w.viewer_rss_mb]):.0f} MB."]
    return "\n".join(lines) + "\n"
