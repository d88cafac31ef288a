"""Interaction data: readers, the leave-one-out split, training examples, synthetic data, noise."""

from .examples import (
    LengthBucketSampler,
    PrefixExamples,
    SequenceExamples,
    collate_trimmed,
    pad_left,
    trim_left_padding,
)
from .interactions import DataFormatError, InteractionData
from .noise import inject_noise
from .readers import load_dataset, read_csv, read_parquet, read_recbole_inter, read_sequence_file
from .split import Split, leave_one_out
from .synthetic import make_synthetic

__all__ = [
    "DataFormatError",
    "InteractionData",
    "LengthBucketSampler",
    "PrefixExamples",
    "SequenceExamples",
    "Split",
    "collate_trimmed",
    "inject_noise",
    "leave_one_out",
    "load_dataset",
    "make_synthetic",
    "pad_left",
    "read_csv",
    "read_parquet",
    "read_recbole_inter",
    "read_sequence_file",
    "trim_left_padding",
]
