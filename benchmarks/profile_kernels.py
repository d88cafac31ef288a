"""Where a benchmarked step's time goes: the device's kernels against the host's wall time.

    python benchmarks/profile_kernels.py --json profile.json

pytest-benchmark times whole steps from the host, Python dispatch and kernel launches
included.  This takes the same steps (the benchmark suites' inputs, one shape per op) and
splits each one: wall time per step with a synchronize after every step (what the suites
report) and with one synchronize after all of them (launches overlapping the device), and,
under ``torch.profiler``, the device time of every kernel.  A step whose kernel time is far
below its wall time is bound by the host, not by its kernels; one whose kernels are slow
shows which.  Without a GPU it runs the suites' tiny CPU shapes (interpreted Triton): a smoke
test, with no device times.
"""

import argparse
import time
from typing import Callable, Dict, List

import torch
from bench_attention import DEVICE, causal_attention_step, cross_attention_step
from bench_info_nce import training_step
from torch.profiler import ProfilerActivity, profile

from igrsr.train.checkpoint import save_json

ON_GPU = torch.cuda.is_available()
SEQ_LEN = 4096 if ON_GPU else 64
INFO_NCE_SHAPE = (16384, 64) if ON_GPU else (256, 64)
WARMUP_STEPS = 3  # Triton's compilation, the allocator's first requests


def cross_step(backend: str, mode: str) -> Callable:
    return cross_attention_step(backend, mode, SEQ_LEN)


def causal_step(backend: str, mode: str) -> Callable:
    return causal_attention_step(backend, mode, SEQ_LEN)


def info_nce_step(backend: str, mode: str) -> Callable:
    batch, dim = INFO_NCE_SHAPE
    return training_step(backend, batch, dim, DEVICE)


def cases() -> List[tuple]:
    """(op, backend, mode, step factory) of every profiled step."""
    attention_modes = ("forward", "forward_backward")
    causal_backends = ("triton", "reference", "sdpa_flash") if ON_GPU else ("triton", "reference")
    info_nce_backends = ("cuda", "reference") if ON_GPU else ("cpu", "reference")
    return (
        [("intent_cross_attention", b, m, cross_step) for b in ("triton", "reference") for m in attention_modes]
        + [("causal_attention", b, m, causal_step) for b in causal_backends for m in attention_modes]
        + [("info_nce", b, "forward_backward", info_nce_step) for b in info_nce_backends]
    )


def synchronize() -> None:
    if ON_GPU:
        torch.cuda.synchronize()


def wall_ms(step: Callable, steps: int, sync_each: bool) -> float:
    synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
        if sync_each:
            synchronize()
    synchronize()
    return (time.perf_counter() - started) / steps * 1e3


def device_time_us(event) -> float:
    # torch renamed the CUDA-specific attribute to a device-generic one in 2.4.
    return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)


def kernel_times(step: Callable, steps: int) -> List[Dict]:
    """Device time per kernel and step (ms), longest first; empty without a GPU."""
    if not ON_GPU:
        return []
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        for _ in range(steps):
            step()
        synchronize()
    kernels = [
        {"kernel": event.key, "ms": device_time_us(event) / steps / 1e3, "calls": event.count / steps}
        for event in profiler.key_averages()
        if event.device_type == torch.autograd.DeviceType.CUDA and device_time_us(event) > 0
    ]
    return sorted(kernels, key=lambda row: -row["ms"])


def profile_case(op: str, backend: str, mode: str, factory: Callable, steps: int) -> Dict:
    step = factory(backend, mode)
    for _ in range(WARMUP_STEPS):
        step()
    kernels = kernel_times(step, steps)
    return {
        "op": op,
        "backend": backend,
        "mode": mode,
        "wall_ms_synchronized": wall_ms(step, steps, sync_each=True),
        "wall_ms_pipelined": wall_ms(step, steps, sync_each=False),
        "kernel_ms": sum(row["ms"] for row in kernels) if ON_GPU else None,
        "kernels": kernels,
    }


def print_row(row: Dict) -> None:
    kernel = "n/a" if row["kernel_ms"] is None else f"{row['kernel_ms']:.3f}"
    print(
        f"{row['op']:24s} {row['backend']:10s} {row['mode']:17s} wall {row['wall_ms_synchronized']:8.3f} ms"
        f" (pipelined {row['wall_ms_pipelined']:8.3f}), kernels {kernel} ms",
        flush=True,
    )
    for kernel_row in row["kernels"][:4]:
        print(f"    {kernel_row['ms']:8.3f} ms  ×{kernel_row['calls']:.0f}  {kernel_row['kernel'][:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the rows here as JSON")
    parser.add_argument("--steps", type=int, default=20 if ON_GPU else 2, help="profiled steps per case")
    parser.add_argument(
        "--ops", default="intent_cross_attention,causal_attention,info_nce", help="comma-separated ops to profile"
    )
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    wanted = set(args.ops.split(","))
    known = {op for op, *_ in cases()}
    if wanted - known:
        parser.error(f"--ops: unknown {sorted(wanted - known)}; expected some of {sorted(known)}")
    rows = []
    for op, backend, mode, factory in cases():
        if op in wanted:
            rows.append(profile_case(op, backend, mode, factory, args.steps))
            print_row(rows[-1])
    if args.json:
        device = torch.cuda.get_device_name() if ON_GPU else "cpu"
        save_json({"device": device, "torch": torch.__version__, "seq_len": SEQ_LEN, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
