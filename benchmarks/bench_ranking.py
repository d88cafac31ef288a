"""Full-ranking evaluation and top-k recommendation: streamed over item chunks against the
materialized users × items matrix they replace.

    pytest benchmarks/bench_ranking.py --benchmark-only

One batch of ``USERS`` users with a SASRec-shaped query (user vectors d = 64 against an item
table, every user's 50 history items excluded) at N ∈ {12,101 (Beauty); 1,000,000} items:

- ``rank``: the target ranks, by :func:`igrsr.eval.streamed_ranks` (chunks of the default
  256 MiB of scores) and by :func:`igrsr.eval.ranks_from_scores` over the whole matrix with a
  dense history mask (the ranking before streaming);
- ``top_k``: the 10 best items, by :func:`igrsr.eval.top_k` and by ``torch.topk`` over the
  whole masked matrix.

``benchmark.extra_info`` holds ``users_per_second`` (``USERS`` / median seconds) and the peak
memory (``peak_memory_mib``: the process's peak resident set above its level before the call
on the CPU, the allocator's peak on a GPU; inputs excluded, measured as in
``bench_info_nce.py``).  On a GPU, when there is one, the same cases run on it.
"""

import pytest
import torch
from bench_info_nce import peak_memory_bytes

from igrsr.eval import SeenItems, TableScores, ranks_from_scores, streamed_ranks, top_k

USERS = 256
DIM = 64
HISTORY = 50
K = 10
CATALOGS = (12_101, 1_000_000)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def batch_of_users(num_items: int, device: str):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(USERS, DIM, generator=generator)
    table = torch.randn(num_items + 1, DIM, generator=generator) * DIM**-0.5
    history = torch.randint(1, num_items + 1, (USERS, HISTORY), generator=generator)
    targets = torch.randint(1, num_items + 1, (USERS,), generator=generator)
    return query.to(device), table.to(device), history.to(device), targets.to(device)


def dense_mask(history: torch.Tensor, num_items: int) -> torch.Tensor:
    return torch.zeros(len(history), num_items + 1, dtype=torch.bool, device=history.device).scatter_(1, history, True)


def ranking_step(method: str, num_items: int, device: str):
    query, table, history, targets = batch_of_users(num_items, device)
    if method == "streamed":
        return lambda: streamed_ranks(TableScores(query, table), targets, SeenItems.from_padded(history))
    return lambda: ranks_from_scores(query @ table.T, targets, dense_mask(history, num_items))


def top_k_step(method: str, num_items: int, device: str):
    query, table, history, _ = batch_of_users(num_items, device)
    if method == "streamed":
        return lambda: top_k(TableScores(query, table), K, history)

    def materialized():
        scores = (query @ table.T).masked_fill_(dense_mask(history, num_items), float("-inf"))
        scores[:, 0] = float("-inf")
        return scores.topk(K, dim=1)

    return materialized


def run(benchmark, task: str, make_step, method: str, num_items: int, device: str):
    benchmark.group = f"{task} {device} N={num_items}"
    step = make_step(method, num_items, device)
    if device == "cuda":
        timed = step

        def step():
            timed()
            torch.cuda.synchronize()

    peak = peak_memory_bytes(step, device)
    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(
        task=task, method=method, device=device, num_items=num_items, users=USERS, dim=DIM, history=HISTORY
    )
    benchmark.extra_info["users_per_second"] = USERS / benchmark.stats.stats.median
    if peak is not None:
        benchmark.extra_info["peak_memory_mib"] = peak / 2**20


@pytest.mark.parametrize("method", ["materialized", "streamed"])
@pytest.mark.parametrize("num_items", CATALOGS)
@pytest.mark.parametrize("device", DEVICES)
def test_rank(benchmark, device, num_items, method):
    run(benchmark, "rank", ranking_step, method, num_items, device)


@pytest.mark.parametrize("method", ["materialized", "streamed"])
@pytest.mark.parametrize("num_items", CATALOGS)
@pytest.mark.parametrize("device", DEVICES)
def test_top_k(benchmark, device, num_items, method):
    run(benchmark, "top_k", top_k_step, method, num_items, device)
