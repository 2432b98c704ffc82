#!/usr/bin/env python3
"""The tables of this folder's README, from the reports in it (run.sh's parts)."""
import glob, json, os, statistics

HERE = os.path.dirname(os.path.abspath(__file__))


def reports(part):
    for path in sorted(glob.glob(os.path.join(HERE, part, "*.json"))):
        yield os.path.basename(path)[:-5], json.load(open(path))


def rate(load, r):
    return r["messages"]["deliveries_per_sec" if load == "chat" else "qps"]


def rounds(part):
    """{(server, load): [(round, report)]} for the closed-loop parts."""
    table = {}
    for name, r in reports(part):
        server, load, rnd = name.rsplit("-", 2)
        table.setdefault((server, load), []).append((int(rnd), r))
    return {k: sorted(v, key=lambda x: x[0]) for k, v in table.items()}


def closed(part, *bases):
    table = rounds(part)
    med = {k: statistics.median(rate(k[1], r) for _, r in v) for k, v in table.items()}
    print(f"\n## {part}\n")
    print("| server | load | rounds 1, 2, 3 | median | server CPU, µs/msg | server CPU % | generator CPU % | runs not ok |")
    print("|---|---|---|---:|---|---|---|---|")
    for (server, load), v in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rates = ", ".join(f"{rate(load, r):,.0f}" for _, r in v)
        us = ", ".join(f"{r['server']['cpu_us_per_msg']}" for _, r in v)
        scpu = ", ".join(f"{r['server']['cpu_percent']:.0f}" for _, r in v)
        gcpu = ", ".join(f"{r['generator']['cpu_percent']:.0f}" for _, r in v)
        behind = sum(1 for _, r in v if not r["ok"])  # here: the generator fell behind
        print(f"| {server} | {load} | {rates} | {med[(server, load)]:,.0f} | {us} | {scpu} | {gcpu} | {behind} of {len(v)} |")
    print()
    for base in bases:
        for load in ("ping", "chat"):
            for (server, l) in sorted(med):
                if l == load and server not in (base, "redis"):
                    print(f"- {load}: {server} ÷ {base} = {med[(server, load)] / med[(base, load)]:.2f}")


def paced():
    print("\n## paced\n")
    print("| run | generator threads | send lag p50 / p99 / p99.9 µs | round trip p50, corrected / uncorrected µs | server CPU % | ok |")
    print("|---|---:|---|---|---:|---|")
    for name, r in reports("paced"):
        lag, rt = r["latency_us"]["send_lag"], r["latency_us"]
        print(f"| {name} | {r['generator']['threads']} | {lag['p50']} / {lag['p99']} / {lag['p999']} | "
              f"{rt['round_trip']['p50']} / {rt['round_trip_uncorrected']['p50']} | {r['server']['cpu_percent']} | {r['ok']} |")


def cpu():
    print("\n## cpu\n")
    print("| run | messages/s | generator µs/msg (CPU %) | server µs/msg (CPU %) | generator ÷ server |")
    print("|---|---:|---|---|---:|")
    for name, r in reports("cpu"):
        g, s = r["generator"], r["server"]
        print(f"| {name} | {r['messages']['qps']:,.0f} | {g['cpu_us_per_msg']} ({g['cpu_percent']}) | "
              f"{s['cpu_us_per_msg']} ({s['cpu_percent']}) | {g['cpu_us_per_msg'] / s['cpu_us_per_msg']:.2f} |")


if __name__ == "__main__":
    closed("ratio2", "redis", "chat-epoll")
    closed("ratio8", "chat-epoll")
    closed("epollout", "redis")
    closed("onecore", "redis")
    closed("onecore0", "redis")
    paced()
    cpu()
