"""One IGR-SR training step (forward, backward, optimizer) per attention backend.

    pytest benchmarks/bench_training_step.py --benchmark-only

On a GPU: L = 512 histories, d = 64, 2 heads, batch 128, bf16 autocast, for ``triton``
(Triton attention; InfoNCE on its best kernel, see ``igrsr.ops.backend_for``) and ``reference``
(PyTorch everywhere; the goal: triton at least 1.5× faster).  Without a GPU only the reference runs,
at a small size, as a smoke test.
"""

import pytest
import torch
from conftest import cuda_peak_mib, reset_cuda_peak

from igrsr import IGRSR, SASRec

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
SEQ_LEN = 512 if ON_GPU else 32
BATCH = 128 if ON_GPU else 16
NUM_ITEMS = 20000 if ON_GPU else 500
BACKENDS = ["reference", pytest.param("triton", marks=pytest.mark.skipif(not ON_GPU, reason="needs a GPU"))]


def make_model(backend: str) -> IGRSR:
    torch.manual_seed(0)
    backbone = SASRec(NUM_ITEMS, max_len=SEQ_LEN, d_model=64, num_layers=2, num_heads=2, backend=backend)
    return IGRSR(backbone, num_layers=2, num_heads=2, backend=backend).to(DEVICE)


def make_batch() -> dict:
    generator = torch.Generator().manual_seed(0)
    history = torch.randint(1, NUM_ITEMS + 1, (BATCH, SEQ_LEN), generator=generator)
    lengths = torch.randint(SEQ_LEN // 4, SEQ_LEN + 1, (BATCH,), generator=generator)
    history[torch.arange(SEQ_LEN)[None, :] < (SEQ_LEN - lengths)[:, None]] = 0  # left padding
    return {
        "history": history.to(DEVICE),
        "target": torch.randint(1, NUM_ITEMS + 1, (BATCH,), generator=generator).to(DEVICE),
        "user": torch.arange(BATCH).to(DEVICE),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_igrsr_training_step(benchmark, backend):
    model = make_model(backend).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = make_batch()
    benchmark.group = f"igrsr training step L={SEQ_LEN} B={BATCH}"
    benchmark.extra_info["backend"] = backend

    def step():
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=ON_GPU):
            loss, _ = model.training_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ON_GPU:
            torch.cuda.synchronize()

    baseline = reset_cuda_peak() if ON_GPU else 0
    benchmark.pedantic(step, rounds=10 if ON_GPU else 2, warmup_rounds=2 if ON_GPU else 1)
    if ON_GPU:
        benchmark.extra_info["peak_memory_mib"] = cuda_peak_mib(baseline)
