"""Print pytest-benchmark JSON files as markdown tables with ratios inside each group.

    python benchmarks/summarize.py benchmarks/results/<date>/bench_*.json

The files are merged into one table.  Within a group (same op, mode and size) every
entry's median is compared with the reference's and with the fastest public peer's (SDPA
flash, FlexAttention, eager; for the linear cross-entropy Liger-Kernel, Cut Cross-Entropy and
the torch.compile'd reference), when those ran: "x ref" > 1 means faster than the reference.
"""

import json
import sys
from collections import defaultdict

COLUMNS = ("tflops", "gbps", "peak_memory_mib", "speedup", "memory_ratio")
PEERS = ("sdpa_flash", "flex", "eager", "liger", "cut-cross-entropy", "compiled-reference")


def backend_of(bench: dict) -> str:
    """The backend an entry timed: recorded in extra_info by every suite."""
    return bench.get("extra_info", {}).get("backend", bench["name"])


def format_value(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def load_reports(paths):
    """(machine info of the first file that has results, every benchmark of all files, notes on
    files without results).  Files are merged so that a suite run in parts (FlexAttention on
    its own) still compares within one group."""
    info, benchmarks, notes = None, [], []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if not text.strip():  # pytest-benchmark writes nothing when the suite was killed
            notes.append(f"{path}: no results (nothing ran, or the suite was killed)")
            continue
        report = json.loads(text)
        if info is None:
            info = report.get("machine_info", {}).get("igrsr", {})
        benchmarks.extend(report["benchmarks"])
    return info or {}, benchmarks, notes


def summarize(paths) -> str:
    info, benchmarks, notes = load_reports(paths)
    groups = defaultdict(dict)
    for bench in benchmarks:
        groups[bench["group"]][backend_of(bench)] = bench["stats"]["median"]
    lines = notes + [
        f"device: {info.get('device')}, torch {info.get('torch')}, CUDA {info.get('cuda')}, "
        f"Triton {info.get('triton')}, {info.get('date')}",
        "",
        "| benchmark | median ms | x ref | x best peer | " + " | ".join(COLUMNS) + " |",
        "|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for bench in sorted(benchmarks, key=lambda b: b["group"]):
        median = bench["stats"]["median"]
        group = groups[bench["group"]]
        versus_reference = group["reference"] / median if "reference" in group else ""
        peers = [group[p] for p in PEERS if p in group]
        versus_peer = min(peers) / median if peers else ""
        extra = bench.get("extra_info", {})
        cells = " | ".join(format_value(extra.get(column, "")) for column in COLUMNS)
        lines.append(
            f"| {bench['name']} | {median * 1e3:.3f} | {format_value(versus_reference)} | "
            f"{format_value(versus_peer)} | {cells} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python benchmarks/summarize.py BENCHMARK_JSON...")
    print(summarize(sys.argv[1:]))
