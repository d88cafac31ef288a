"""How LightRec's codes start: ``python scripts/lightrec_codebook_start.py DATA SASREC_RUN [SEED]``.

Builds LightRec (4 codebooks of 256) over a trained SASRec with each codebook start and
codeword choice and, before any training, prints one JSON line per combination: the codewords
each codebook uses, and how much of each key its codewords leave unexplained
(mean ‖key − Σ codewords‖ / ‖key‖).  reports/all-datasets/lightrec-stage2-2026-11-27 used it.
"""

import json
import sys
from pathlib import Path
from typing import Dict, List

import torch

from igrsr.data import leave_one_out
from igrsr.models import LightRec, SASRec
from igrsr.train import load_data
from igrsr.train.runs import load_best

STARTS = [("random", "bilinear"), ("kmeans", "bilinear"), ("kmeans", "euclidean")]


def codebook_starts(backbone: SASRec, seed: int = 42, **options) -> List[Dict]:
    """One row per (start, choice): the codewords each codebook uses and the unexplained share."""
    rows = []
    for start, choice in STARTS:
        torch.manual_seed(seed)
        model = LightRec(backbone, codebook_start=start, codebook_choice=choice, **options)
        table = model.encoder.embedding.items
        with torch.no_grad():
            left = (table.keys - table.weight[1:]).norm(dim=1) / table.keys.norm(dim=1)
        rows.append({"codebook_start": start, "codebook_choice": choice,
                     "codewords_used": model.facts()["codewords_used"], "unexplained": left.mean().item()})  # fmt: skip
    return rows


def main(data_path: str, sasrec_run: str, seed: str = "42") -> None:
    data = load_data(data_path)
    backbone = load_best(Path(sasrec_run), data, leave_one_out(data), "cpu")[0]
    for row in codebook_starts(backbone, int(seed)):
        print(json.dumps(row))


if __name__ == "__main__":
    main(*sys.argv[1:])
