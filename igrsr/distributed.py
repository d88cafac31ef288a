"""Multi-process training on ``torch.distributed``: who this process is, and what ranks share.

A run of ``torchrun --nproc-per-node N -m igrsr train ...`` (or ``igrsr train --nproc N``) is N
processes, one rank each, all reading the same data.  Outside such a run every helper here is
the single-process identity: rank 0 of a world of 1, gathers return their input.
"""

import contextlib
import os
import socket
import sys
import warnings
from typing import Callable, Iterator, List, Sequence, Tuple, TypeVar

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as differentiable

T = TypeVar("T")


def is_distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0: the one process that writes a run's files and prints its tables."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def launched_world_size() -> int:
    """The number of processes ``torchrun`` started this one among (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


_ENDED_GROUPS: List[object] = []  # see process_group


@contextlib.contextmanager
def process_group(device: str) -> Iterator[str]:
    """Inside ``torchrun``: join the process group it set up (NCCL on CUDA, gloo on CPU) for the
    block, yielding this rank's device (``cuda`` becomes the local rank's GPU).  Outside it
    yields ``device`` and does nothing."""
    if launched_world_size() == 1:
        yield device
        return
    if torch.device(device).type == "cuda":
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    try:
        yield device
    finally:
        # A DistributedDataParallel made in the block may outlive it (a local of the caller).
        # Freed after the group has ended, it would hold the group's last reference and destroy
        # it while holding the GIL, joining gloo's threads as one of them waits for that GIL to
        # finish a collective: a deadlock.  So the group object itself lives on until exit.
        _ENDED_GROUPS.append(dist.group.WORLD)
        dist.destroy_process_group()


def run_processes(nproc: int, main: Callable[[List[str]], int], argv: Sequence[str]) -> int:
    """``main(argv)`` in ``nproc`` new processes on this machine, set up as ``torchrun`` sets up its
    ranks (what ``igrsr train --nproc N`` does); returns the exit status of a failed rank, else 0."""
    with socket.socket() as probe:  # a free port for the ranks to meet on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        torch.multiprocessing.spawn(_run_rank, args=(nproc, port, main, list(argv)), nprocs=nproc)
    except torch.multiprocessing.ProcessExitedException as error:
        return error.exit_code
    except torch.multiprocessing.ProcessRaisedException:
        return 1
    return 0


def _run_rank(rank: int, world: int, port: int, main: Callable[[List[str]], int], argv: List[str]) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
    )  # fmt: skip
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # the ranks share the cores
    status = main(argv)
    # Leave without running destructors: a DistributedDataParallel still referenced after its
    # process group ended destroys gloo's group when it is freed, joining gloo's threads while
    # holding the GIL that a thread finishing a collective needs (a deadlock seen on a loaded
    # machine).  Everything the rank writes is written and closed by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` concatenated along dim 0 in rank order (ranks may hold different
    numbers of rows).  Gradients of a floating tensor flow back to the rank each row came from
    (``torch.distributed.nn.functional.all_gather``, whose backward sums over ranks)."""
    if not is_distributed():
        return tensor
    if tensor.dtype == torch.bool:  # not every backend moves bool tensors
        return gather_rows(tensor.to(torch.uint8)).bool()
    counts = torch.tensor([len(tensor)], device=tensor.device)
    all_counts = [torch.empty_like(counts) for _ in range(world_size())]
    dist.all_gather(all_counts, counts)
    counts = [int(count) for count in all_counts]
    # Collectives move tensors of one shape, so every rank pads to the longest.
    padded = torch.nn.functional.pad(tensor, (0, 0) * (tensor.dim() - 1) + (0, max(counts) - len(tensor)))
    if tensor.requires_grad:
        with warnings.catch_warnings():  # its deprecation names a private module as the replacement
            warnings.simplefilter("ignore", FutureWarning)
            parts = differentiable.all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:count] for part, count in zip(parts, counts)])


def shard(batches: Sequence[T], rank: int, world: int) -> List[T]:
    """Rank ``rank``'s share of an epoch's ``batches``: every ``world``-th from its own index.

    The list is first extended by its first batches to a multiple of ``world`` (as
    ``DistributedSampler`` pads), so every rank takes the same number of steps and every batch
    is trained on at least once."""
    padded_length = len(batches) + -len(batches) % world
    return [batches[index % len(batches)] for index in range(rank, padded_length, world)]


def user_range(num_users: int, rank: int, world: int) -> Tuple[int, int]:
    """The contiguous block of users rank ``rank`` evaluates: sizes differ by at most one."""
    return num_users * rank // world, num_users * (rank + 1) // world
