"""Training steps per second of SASRec and IGR-SR: fp32 eager, --compile, bf16 autocast, and
1 against N data-parallel processes.

    python scripts/measure_training_speed.py --data ../shared/data/Beauty.txt --steps 50 --processes 1,2

``reference-loss`` is fp32 eager with the catalog loss materialized (rows x N logits) instead of
the fused linear cross-entropy, ``chunked-loss`` the same with the loss forced to the chunked
backend (``fp32`` lets ``auto`` choose).  Each row times ``--steps`` optimizer steps of the trainer
(``Trainer._step`` on the trainer's own batches, ``--warmup`` untimed steps first, compilation
included there) and reports steps/s and training examples/s over all processes.  IGR-SR runs
over an untrained SASRec (its speed does not depend on the stage-1 weights).  Measure on a
quiet machine: other load changes the numbers.
"""

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import torch

from igrsr import IGRSR, SASRec
from igrsr.data import leave_one_out, load_data
from igrsr.distributed import barrier, is_main_process, launched_world_size, process_group, run_processes, world_size
from igrsr.train import TrainConfig, Trainer
from igrsr.train.config import resolve_device
from igrsr.train.runs import environment

# fp32 with the catalog loss on one backend of the linear cross-entropy: the reference (rows x N
# logits materialized) is the baseline of the fused loss, same batches, same threads.
LOSS_BACKENDS = {"reference-loss": "reference", "chunked-loss": "chunked"}
SETTINGS = {"fp32": {}, **dict.fromkeys(LOSS_BACKENDS, {}), "compile": {"compile": True}, "bf16": {"precision": "bf16"}}


def build(model_name: str, split, setting: str) -> torch.nn.Module:
    torch.manual_seed(0)
    sasrec = SASRec(split.num_items)
    model = sasrec if model_name == "sasrec" else IGRSR(sasrec)
    if setting in LOSS_BACKENDS:
        model.catalog_loss.backend = LOSS_BACKENDS[setting]
    return model


def steps_per_second(trainer: Trainer, steps: int, warmup: int) -> float:
    trainer.model.train()
    batches = []
    while len(batches) < warmup + steps:
        batches += trainer._epoch_batches()
    for indices in batches[:warmup]:
        trainer._step(trainer._to_device(trainer.examples.batch(indices)))
    synchronize(trainer.device)
    barrier()
    started = time.perf_counter()
    for indices in batches[warmup : warmup + steps]:
        trainer._step(trainer._to_device(trainer.examples.batch(indices)))
    synchronize(trainer.device)
    barrier()
    return steps / (time.perf_counter() - started)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, device: str) -> List[Dict]:
    split = leave_one_out(load_data(args.data))
    rows = []
    for model_name in args.models.split(","):
        for setting in args.settings.split(","):
            base = TrainConfig(batch_size=args.batch_size, progress=False, device=device)
            config = replace(base, **SETTINGS[setting])
            with tempfile.TemporaryDirectory() as run_dir:
                trainer = Trainer(build(model_name, split, setting), split, config, Path(run_dir), model_name)
                rate = steps_per_second(trainer, args.steps, args.warmup)
            row = {
                "model": model_name, "setting": setting, "processes": world_size(), "device": device,
                "steps_per_s": rate, "examples_per_s": rate * args.batch_size * world_size(),
            }  # fmt: skip
            rows.append(row)
            if is_main_process():
                print(json.dumps(row), flush=True)
    return rows


def run_ranks(args: argparse.Namespace) -> int:
    """Inside one of the N processes: measure, rank 0 writes the rows."""
    with process_group(resolve_device(args.device)) as device:
        rows = measure(args, device)
        if is_main_process():
            Path(args.rows_file).write_text(json.dumps(rows))
    return 0


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/Beauty.txt")
    parser.add_argument("--models", default="sasrec,igrsr")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"of {', '.join(SETTINGS)}")
    parser.add_argument("--processes", default="1,2", help="process counts to compare")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compile: its first shapes)")
    parser.add_argument("--batch-size", type=int, default=256, help="per process")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process (default: cores / N)")
    parser.add_argument("--json", default=None, help="also write every row to this file")
    parser.add_argument("--rows-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if launched_world_size() > 1:
        if args.threads:
            torch.set_num_threads(args.threads)
        return run_ranks(args)
    rows = []
    for processes in (int(count) for count in args.processes.split(",")):
        if processes == 1:
            if args.threads:
                torch.set_num_threads(args.threads)
            rows += measure(args, resolve_device(args.device))
            continue
        with tempfile.TemporaryDirectory() as scratch:
            rows_file = Path(scratch) / "rows.json"
            status = run_processes(processes, main, [*argv, "--rows-file", str(rows_file)])
            if status:
                return status
            rows += json.loads(rows_file.read_text())
    print(f"\n{'model':<8}{'setting':<9}{'procs':>6}{'steps/s':>10}{'examples/s':>12}")
    for row in rows:
        print(f"{row['model']:<8}{row['setting']:<9}{row['processes']:>6}{row['steps_per_s']:>10.2f}"
              f"{row['examples_per_s']:>12.0f}")  # fmt: skip
    if args.json:
        record = {
            "command": " ".join(["python", *sys.argv]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "environment": environment(),
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
