"""Compile every Triton kernel for a GPU target without a GPU: ``python scripts/compile_triton_kernels.py``.

Triton's interpreter (how the kernels are tested on CPUs) does not check what only the
compiler checks: which globals a kernel may read, the types of ``tl.dot`` operands, shared
memory per block.  This compiles each kernel down to a cubin (Triton's wheel carries ptxas),
with the block sizes, warps and stages the launchers choose on a GPU: for sm_90 with every
dtype and every head dim, with attention dropout off and on (the Philox mask costs registers),
for sm_80 with the largest head dim (the most shared memory); and checks
that its shared memory fits the target and that the kernels tuned not to spill registers
(``SPILL_FREE``) do not.  Prints one line per kernel, with its registers and stack per thread
where the wheel's cuobjdump reads them (what bounds occupancy; stack is spilled registers),
and exits non-zero on the first failure.
Must run without TRITON_INTERPRET, which turns kernels into interpreted functions.  Compiles
the kernels of the checkout it lives in (its root goes first on ``sys.path``), whichever igrsr
is installed; tests/test_triton_compile.py runs it.
"""

import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import List, Optional, Tuple

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from igrsr.ops.causal_attention import triton_kernels as causal  # noqa: E402
from igrsr.ops.intent_cross_attention import triton_kernels as cross  # noqa: E402
from igrsr.ops.linear_cross_entropy import triton_kernels as linear_ce  # noqa: E402
from igrsr.ops.triton_common import needs_fp32_dot  # noqa: E402

# Largest shared memory one block may use (opt-in), in bytes.
SHARED_MEMORY = {80: 166912, 90: 232448}
TRITON_TYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
BYTE_POINTERS = {"INTENT_MASK", "KEY_REAL"}
FP32_POINTERS = {
    "LSE",
    "DELTA",
    "GRAD_K_PARTIAL",
    "GRAD_V_PARTIAL",
    "PARTIAL_MAX",
    "PARTIAL_SUM",
    "ROW_GRADS",
    "GRAD_H_PARTIAL",
}
INT64_POINTERS = {"TARGETS"}
FP32_SCALARS = {"dropout_p"}
# Kernels whose launch configs were chosen not to spill registers (the cross-attention
# backward spilled up to 6.5 KB per thread before); a spill there is a regression.  The linear
# cross-entropy kernels spill at d = 128 only (up to 4.8 KB on sm_80 in float32; none at d <= 64).
SPILL_FREE = {"_cross_attention_fwd_kernel", "_cross_attention_bwd_kernel"}


def signature(kernel, dtype, constexprs):
    """Argument types by naming convention: upper-case names are pointers, ``*scale`` and
    ``dropout_p`` floats, other lower-case names int32 (seeds are drawn below 2**31)."""
    types = {}
    for param in kernel.params:
        name = param.name
        if param.is_constexpr:
            types[name] = "constexpr"
        elif name in BYTE_POINTERS:
            types[name] = "*u8"
        elif name in FP32_POINTERS:
            types[name] = "*fp32"
        elif name in INT64_POINTERS:
            types[name] = "*i64"
        elif name.isupper():
            types[name] = "*" + TRITON_TYPES[dtype]
        elif name.endswith("scale") or name in FP32_SCALARS:
            types[name] = "fp32"
        else:
            types[name] = "i32"
    missing = {name for name, kind in types.items() if kind == "constexpr"} - set(constexprs)
    if missing:
        raise ValueError(f"{kernel.fn.__name__}: no value for constexpr {sorted(missing)}")
    return types


def launches(dtype, head_dim, dropout):
    """(kernel, constexprs, num_warps, num_stages) of every launch, as the launchers choose them;
    with ``dropout``, only the kernels that take it."""
    fp32_dot = needs_fp32_dot(dtype)
    cross_launches = [
        (
            kernel,
            dict(HAS_MASK=True, HAS_DROPOUT=dropout, HEAD_DIM=head_dim, BLOCK_L=config.block_rows, FP32_DOT=fp32_dot),
            config.num_warps,
            config.num_stages,
        )
        for kernel, config in (
            (cross._cross_attention_fwd_kernel, cross._config("forward", head_dim, dtype, dropout)),
            (cross._cross_attention_bwd_kernel, cross._config("backward", head_dim, dtype, dropout)),
        )
    ]
    forward, backward = causal._forward_config(head_dim, dtype), causal._backward_config(head_dim, dtype)
    # The linear cross-entropy kernels with hidden size = head_dim, at Triton's default stages.
    linear_ce_constexprs = linear_ce.constexprs(torch.empty(1, head_dim, dtype=dtype, device="meta"))
    linear_ce_launches = [
        (kernel, linear_ce_constexprs, linear_ce.launch_config(dtype).num_warps, 3)
        for kernel in (linear_ce._lse_kernel, linear_ce._grad_hidden_kernel, linear_ce._grad_weight_kernel)
    ]
    every_launch = [
        *cross_launches,
        *linear_ce_launches,
        (
            causal._causal_attention_fwd_kernel,
            dict(
                HAS_PADDING=True,
                HAS_DROPOUT=dropout,
                HEAD_DIM=head_dim,
                BLOCK_M=forward.block_m,
                BLOCK_N=forward.block_n,
                FP32_DOT=fp32_dot,
            ),
            forward.num_warps,
            forward.num_stages,
        ),
        (causal._bwd_preprocess_kernel, dict(HEAD_DIM=head_dim, BLOCK_M=backward.block_m2), 4, 3),
        (
            causal._causal_attention_bwd_kernel,
            dict(
                HAS_PADDING=True,
                HAS_DROPOUT=dropout,
                HEAD_DIM=head_dim,
                BLOCK_M1=backward.block_m1,
                BLOCK_N1=backward.block_n1,
                BLOCK_M2=backward.block_m2,
                BLOCK_N2=backward.block_n2,
                FP32_DOT=fp32_dot,
            ),
            backward.num_warps,
            backward.num_stages,
        ),
    ]
    return [launch for launch in every_launch if not dropout or "HAS_DROPOUT" in launch[1]]


def resource_usage(cubin: bytes) -> Optional[Tuple[int, int]]:
    """(registers, stack bytes) per thread of a compiled kernel, from the wheel's cuobjdump;
    None where it is missing.  Stack is spilled registers."""
    import triton.backends.nvidia

    tool = os.path.join(os.path.dirname(triton.backends.nvidia.__file__), "bin", "cuobjdump")
    if not os.access(tool, os.X_OK):
        return None
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        usage = subprocess.run([tool, "--dump-resource-usage", handle.name], capture_output=True, text=True)
    found = re.search(r"REG:(\d+) STACK:(\d+)", usage.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else None


TARGETS = [
    (90, dtype, head_dim, dropout)
    for dropout in (False, True)
    for dtype in TRITON_TYPES
    for head_dim in (16, 32, 64, 128)
]
TARGETS += [(80, dtype, 128, False) for dtype in TRITON_TYPES]


def compile_target(target: tuple) -> Tuple[List[str], Optional[str]]:
    """(one line per launch of ``target``, the first failure or None), compiled in a worker."""
    arch, dtype, head_dim, dropout = target
    lines = []
    for kernel, constexprs, num_warps, num_stages in launches(dtype, head_dim, dropout):
        source = ASTSource(fn=kernel, signature=signature(kernel, dtype, constexprs), constexprs=constexprs)
        compiled = triton.compile(
            source, target=GPUTarget("cuda", arch, 32), options=dict(num_warps=num_warps, num_stages=num_stages)
        )
        shared = compiled.metadata.shared
        name = kernel.fn.__name__
        launch = f"sm_{arch} {TRITON_TYPES[dtype]} head_dim={head_dim} {name}{' dropout' if dropout else ''}"
        usage = resource_usage(compiled.asm["cubin"])
        registers = f", {usage[0]} registers and {usage[1]} B stack per thread" if usage else ""
        lines.append(f"{launch}: {num_warps} warps, {shared} B shared{registers}")
        if shared > SHARED_MEMORY[arch]:
            return lines, f"{name} needs {shared} B of shared memory, sm_{arch} has {SHARED_MEMORY[arch]}"
        if usage and usage[1] and name in SPILL_FREE:
            return lines, f"{launch} spills {usage[1]} B of registers per thread; its launch config must not"
    return lines, None


def main():
    # One process per core: each compile is single-threaded (ptxas included), and the 168
    # launches take 10-15 minutes on one core of a small CPU with Triton's cache cold.
    workers = min(len(TARGETS), os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for lines, failure in pool.map(compile_target, TARGETS):
            print("\n".join(lines), flush=True)
            if failure:
                sys.exit(failure)


if __name__ == "__main__":
    main()
