"""How LightRec's codes start: ``python codebook_start.py DATA SASREC_RUN [SEED]``.

Compares the random codebook start LightRec uses with a start from residual k-means of the
keys (the authors' code has one, commented out), under two rules for choosing a codeword:
the bilinear score at its identity start (an inner product, LightRec's rule) and the nearest
codeword (not LightRec's).  Prints one JSON line per start: the codewords each codebook uses
and how much of each key the four codewords leave unexplained (mean ‖key − Σ codewords‖ / ‖key‖).
"""

import json
import sys
from pathlib import Path

import torch

from igrsr.data import leave_one_out
from igrsr.models import LightRec
from igrsr.train import load_data
from igrsr.train.runs import load_best


def kmeans(points: torch.Tensor, num_centres: int, iterations: int = 20) -> torch.Tensor:
    """Lloyd's k-means from distinct random points; an empty cluster keeps its centre."""
    centres = points[torch.randperm(len(points))[:num_centres]].clone()
    for _ in range(iterations):
        assignment = torch.cdist(points, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=num_centres)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres


def residual_kmeans_start(keys: torch.Tensor, num_codebooks: int, codebook_size: int, nearest: bool) -> dict:
    residual, used = keys, []
    for _ in range(num_codebooks):
        centres = kmeans(residual, codebook_size)
        chosen = torch.cdist(residual, centres).argmin(1) if nearest else (residual @ centres.T).argmax(1)
        used.append(len(torch.unique(chosen)))
        residual = residual - centres[chosen]
    return {"codewords_used": used, "unexplained": (residual.norm(dim=1) / keys.norm(dim=1)).mean().item()}


def main(data_path: str, sasrec_run: str, seed: str = "42") -> None:
    data = load_data(data_path)
    torch.manual_seed(int(seed))
    backbone = load_best(Path(sasrec_run), data, leave_one_out(data), "cpu")[0]
    lightrec = LightRec(backbone)  # the defaults: 4 codebooks of 256, random start
    table = lightrec.encoder.embedding.items
    with torch.no_grad():
        codes, composed = table.encode()
    keys, (num_codebooks, codebook_size) = table.keys, table.codebooks.shape[:2]
    unexplained = ((keys - composed).norm(dim=1) / keys.norm(dim=1)).mean().item()
    print(json.dumps({"start": "random (LightRec)", "codewords_used": lightrec.facts()["codewords_used"],
                      "unexplained": unexplained}))  # fmt: skip
    for nearest, rule in ((False, "inner product (LightRec's rule)"), (True, "nearest codeword")):
        start = residual_kmeans_start(keys, num_codebooks, codebook_size, nearest)
        print(json.dumps({"start": f"residual k-means, {rule}", **start}))


if __name__ == "__main__":
    main(*sys.argv[1:])
