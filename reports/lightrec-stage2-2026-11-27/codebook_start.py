"""How LightRec's codes start: ``python codebook_start.py DATA SASREC_RUN [SEED]``.

Builds LightRec (4 codebooks of 256) over a trained SASRec with each codebook start and
codeword choice and, before any training, prints one JSON line per combination: the codewords
each codebook uses, and how much of each key its codewords leave unexplained
(mean ‖key − Σ codewords‖ / ‖key‖).
"""

import json
import sys
from pathlib import Path

import torch

from igrsr.data import leave_one_out
from igrsr.models import LightRec
from igrsr.train import load_data
from igrsr.train.runs import load_best

STARTS = [("random", "bilinear"), ("kmeans", "bilinear"), ("kmeans", "euclidean")]


def main(data_path: str, sasrec_run: str, seed: str = "42") -> None:
    data = load_data(data_path)
    backbone = load_best(Path(sasrec_run), data, leave_one_out(data), "cpu")[0]
    for start, choice in STARTS:
        torch.manual_seed(int(seed))
        model = LightRec(backbone, codebook_start=start, codebook_choice=choice)
        table = model.encoder.embedding.items
        with torch.no_grad():
            left = (table.keys - table.weight[1:]).norm(dim=1) / table.keys.norm(dim=1)
        row = {"codebook_start": start, "codebook_choice": choice}
        print(json.dumps({**row, "codewords_used": model.facts()["codewords_used"], "unexplained": left.mean().item()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
