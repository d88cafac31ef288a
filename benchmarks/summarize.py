"""Print a pytest-benchmark JSON file as a markdown table (median, throughput, memory, ratios).

    python benchmarks/summarize.py benchmarks/results/<date>/benchmarks.json
"""

import json
import sys

COLUMNS = ("tflops", "gbps", "peak_memory_mib", "speedup", "memory_ratio")


def format_value(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def summarize(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    info = report.get("machine_info", {}).get("igrsr", {})
    lines = [f"device: {info.get('device')}, torch {info.get('torch')}, CUDA {info.get('cuda')}, "
             f"Triton {info.get('triton')}, {info.get('date')}", "",
             "| benchmark | median ms | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]  # fmt: skip
    for bench in report["benchmarks"]:
        extra = bench.get("extra_info", {})
        cells = " | ".join(format_value(extra.get(column, "")) for column in COLUMNS)
        lines.append(f"| {bench['name']} | {bench['stats']['median'] * 1e3:.3f} | {cells} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
