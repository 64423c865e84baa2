#!/usr/bin/env python3
"""Summarises perf/results.csv (written by perf/compare.sh): medians, sluice's
ratios to rsyslog and to the raw relay, the targets of issue 4, a JSON
summary and a PNG plot."""

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
from collections import defaultdict

ORDER = ["relay", "sluice", "rsyslog", "syslog-ng"]
COLORS = {"relay": "#999999", "sluice": "#1f77b4", "rsyslog": "#d62728", "syslog-ng": "#2ca02c"}


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--commit", default="?")
    ap.add_argument("--rsyslog", default="?")
    ap.add_argument("--syslog-ng", dest="syslog_ng", default="?")
    ap.add_argument("--socat", default="?")
    ap.add_argument("--records", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--conns", type=int, default=0)
    ap.add_argument("--lat-rate", type=int, default=100000)
    ap.add_argument("--loadavg", default="?", help="load average before / after the run")
    ap.add_argument("--json")
    ap.add_argument("--png")
    a = ap.parse_args()

    rows = list(csv.DictReader(open(a.csv)))
    rate = defaultdict(list)  # (workload, system) -> [records/s]
    lost = defaultdict(list)
    sent_rate = defaultdict(list)
    lat = {}
    rss = defaultdict(int)
    for r in rows:
        key = (r["workload"], r["system"])
        rate[key].append(float(r["records_per_sec"]))
        lost[key].append((int(r["sent"]), int(r["lost"])))
        sent_rate[key].append(float(r.get("sent_rate") or 0))
        if r["workload"] == "lat":
            lat[r["system"]] = {"p50_ms": round(float(r["p50_ms"]), 3),
                                "p99_ms": round(float(r["p99_ms"]), 3),
                                "max_ms": round(float(r["max_ms"]), 3), "lost": int(r["lost"])}
        rss[r["system"]] = max(rss[r["system"]], int(r["rss_kib"]))
    systems = [s for s in ORDER if any(k[1] == s for k in rate)]
    med = {k: statistics.median(v) for k, v in rate.items()}

    def m(w, s):
        return med.get((w, s), 0.0)

    udp_rates = sorted({int(w[2:]) for (w, _) in rate if w.startswith("c-")})
    udp = {s: {str(q): {"sent": sum(x for x, _ in lost[(f"c-{q}", s)]),
                        "lost": sum(y for _, y in lost[(f"c-{q}", s)])}
               for q in udp_rates} for s in systems}
    for s in udp:
        for q, v in udp[s].items():
            v["loss_pct"] = round(100.0 * v["lost"] / v["sent"], 3) if v["sent"] else None
            # What the sender managed: on a small machine the systems under
            # test take CPU from it.
            rates = sent_rate[(f"c-{q}", s)]
            v["sent_per_sec"] = round(statistics.median(rates)) if rates else None

    sa, ra, xa = m("a", "sluice"), m("a", "rsyslog"), m("a", "relay")
    sb = m("b", "sluice")
    summary = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
                    "kernel": platform.release()},
        "commit": a.commit,
        "load_average_before_after": a.loadavg,
        "versions": {"rsyslog": a.rsyslog, "syslog-ng": a.syslog_ng, "socat": a.socat},
        "workload": {"records": a.records, "rounds": a.rounds, "connections_b": a.conns,
                     "udp_rates": udp_rates, "latency_rate": a.lat_rate},
        "records_per_sec": {w: {s: round(m(w, s)) for s in systems} for w in ("a", "b")},
        "sluice_vs_rsyslog_a": round(sa / ra, 2) if ra else None,
        "sluice_vs_relay_a": round(sa / xa, 3) if xa else None,
        "sluice_vs_rsyslog_b": round(sb / m("b", "rsyslog"), 2) if m("b", "rsyslog") else None,
        "sluice_b_over_a": round(sb / sa, 2) if sa else None,
        "udp": udp,
        "latency_at_rate": lat,
        "peak_rss_mib": {s: round(rss[s] / 1024, 1) for s in systems if s != "relay"},
    }
    sl = udp.get("sluice", {})
    loss200 = sl.get("200000", {}).get("lost")
    sent200 = sl.get("200000", {}).get("sent_per_sec")
    p99 = lat.get("sluice", {}).get("p99_ms")
    rss_s = summary["peak_rss_mib"].get("sluice")
    targets = [
        ("(a) >= 2,000,000 records/s", f"{sa:,.0f}/s", sa >= 2_000_000),
        ("(a) >= 6x rsyslog", f"{summary['sluice_vs_rsyslog_a']}x", (summary["sluice_vs_rsyslog_a"] or 0) >= 6),
        ("(a) >= 45% of raw relay", f"{100 * (summary['sluice_vs_relay_a'] or 0):.1f}%",
         (summary["sluice_vs_relay_a"] or 0) >= 0.45),
        ("(b) scales with connections (b/a >= 1)", f"{summary['sluice_b_over_a']}x", (summary["sluice_b_over_a"] or 0) >= 1),
        ("(c) no loss at 200k UDP msg/s",
         f"{loss200} lost at {sent200:,}/s sent" if loss200 is not None else "not run",
         loss200 == 0 and (sent200 or 0) >= 190_000),
        (f"p99 <= 2 ms at {a.lat_rate // 1000 or 100}k records/s", f"{p99} ms" if p99 is not None else "not run",
         p99 is not None and p99 <= 2.0),
        ("peak RSS <= 256 MiB", f"{rss_s} MiB" if rss_s is not None else "not run", rss_s is not None and rss_s <= 256),
    ]
    # A part the run skipped (UDP_RATES="", LAT_RATE=0) is neither met nor missed.
    targets = [(t, v, None if v == "not run" else ok) for t, v, ok in targets]
    summary["targets"] = [{"target": t, "measured": v, "met": ok} for t, v, ok in targets]

    out = []
    out.append(f"machine: {summary['machine']['cpu']}, {summary['machine']['cores']} cores, "
               f"{summary['machine']['memory_gib']} GiB, Linux {summary['machine']['kernel']}")
    out.append(f"commit {a.commit}; rsyslog {a.rsyslog}, syslog-ng {a.syslog_ng}, socat {a.socat}; "
               f"load average before/after {a.loadavg}")
    out.append("")
    out.append(f"| records/s (median of {a.rounds}) | " + " | ".join(systems) + " |")
    out.append("|---|" + "---:|" * len(systems))
    for w, label in [("a", "(a) TCP, 1 connection"), ("b", f"(b) TCP, {a.conns} connections")]:
        out.append(f"| {label} | " + " | ".join(f"{m(w, s):,.0f}" for s in systems) + " |")
    for q in udp_rates:
        out.append(f"| (c) UDP {q // 1000}k/s asked: loss (sent/s) | "
                   + " | ".join(f"{udp[s][str(q)]['loss_pct']}% ({udp[s][str(q)]['sent_per_sec'] or 0:,})"
                                for s in systems) + " |")
    out.append(f"| p99 latency at {a.lat_rate // 1000 or 100}k/s (ms) | "
               + " | ".join(f"{lat.get(s, {}).get('p99_ms', '-')}" for s in systems) + " |")
    out.append("| peak RSS (MiB) | " + " | ".join(
        "-" if s == "relay" else f"{summary['peak_rss_mib'].get(s, '-')}" for s in systems) + " |")
    out.append("")
    out.append(f"sluice (a): {sa:,.0f} records/s = {summary['sluice_vs_rsyslog_a']}x rsyslog = "
               f"{100 * (summary['sluice_vs_relay_a'] or 0):.1f}% of the raw relay; "
               f"(b)/(a) = {summary['sluice_b_over_a']}")
    out.append("")
    out.append("| target | measured | met |")
    out.append("|---|---|---|")
    for t, v, ok in targets:
        out.append(f"| {t} | {v} | {'-' if ok is None else 'yes' if ok else 'no'} |")
    print("\n".join(out))

    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    if a.png:
        plot(a.png, systems, m, udp, udp_rates, lat, summary, a)


def plot(path, systems, m, udp, udp_rates, lat, summary, a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(16, 8.5))
    colors = [COLORS.get(s, "#555") for s in systems]
    for i, (w, title) in enumerate([("a", "(a) TCP, 1 connection"), ("b", f"(b) TCP, {a.conns} connections")]):
        vals = [m(w, s) / 1e6 for s in systems]
        bars = ax[0][i].bar(systems, vals, color=colors)
        ax[0][i].bar_label(bars, labels=[f"{v:.2f}M" for v in vals])
        ax[0][i].set_title(f"{title}\nmillion records/s, median of {a.rounds}")
        if w == "a":
            ax[0][i].axhline(2.0, color="#1f77b4", linestyle="--", linewidth=1)
            ax[0][i].text(-0.4, 2.03, "target 2M/s", color="#1f77b4", fontsize=8)
    width = 0.8 / max(len(systems), 1)
    for k, s in enumerate(systems):
        xs = [j + k * width for j in range(len(udp_rates))]
        ys = [udp[s][str(q)]["loss_pct"] or 0 for q in udp_rates]
        ax[0][2].bar(xs, ys, width, label=s, color=COLORS.get(s, "#555"))
    ax[0][2].set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(udp_rates))])
    ax[0][2].set_xticklabels([f"{q // 1000}k/s" for q in udp_rates])
    ax[0][2].set_title("(c) UDP for 10 s at the asked rate\nrecords lost (%)")
    ax[0][2].legend()
    p99 = [lat.get(s, {}).get("p99_ms", 0) for s in systems]
    bars = ax[1][0].bar(systems, p99, color=colors)
    ax[1][0].bar_label(bars, labels=[f"{v:.1f}" for v in p99])
    ax[1][0].set_yscale("log")
    ax[1][0].axhline(2.0, color="#1f77b4", linestyle="--", linewidth=1)
    ax[1][0].set_title(f"p99 send-to-sink latency at {a.lat_rate // 1000}k records/s\nms (log scale; target 2 ms)")
    rs = [s for s in systems if s != "relay"]
    rss = [summary["peak_rss_mib"].get(s, 0) for s in rs]
    bars = ax[1][1].bar(rs, rss, color=[COLORS.get(s, "#555") for s in rs])
    ax[1][1].bar_label(bars, labels=[f"{v:.0f}" for v in rss])
    ax[1][1].axhline(256, color="#1f77b4", linestyle="--", linewidth=1)
    ax[1][1].set_title("peak RSS over all workloads\nMiB (target 256)")
    ax[1][2].axis("off")
    lines = [f"{'not run' if t['met'] is None else 'met' if t['met'] else 'MISSED'}: {t['target']}\n      measured {t['measured']}"
             for t in summary["targets"]]
    ax[1][2].text(0, 1, "sluice against the targets\n\n" + "\n".join(lines), va="top", fontsize=9,
                  family="monospace")
    mach = summary["machine"]
    fig.suptitle(f"sluice {summary['commit']} vs rsyslog {a.rsyslog}, syslog-ng {a.syslog_ng}, socat relay "
                 f"- {mach['cpu']}, {mach['cores']} cores, load avg {a.loadavg}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
