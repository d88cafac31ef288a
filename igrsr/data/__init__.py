"""Interaction data: readers, the leave-one-out split, training examples, synthetic data, noise."""

from .config import SYNTHETIC, DataConfig, is_synthetic, load_data, reload_data
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
    "SYNTHETIC",
    "DataConfig",
    "DataFormatError",
    "InteractionData",
    "LengthBucketSampler",
    "PrefixExamples",
    "SequenceExamples",
    "Split",
    "collate_trimmed",
    "inject_noise",
    "is_synthetic",
    "leave_one_out",
    "load_data",
    "load_dataset",
    "make_synthetic",
    "pad_left",
    "read_csv",
    "read_parquet",
    "read_recbole_inter",
    "read_sequence_file",
    "reload_data",
    "trim_left_padding",
]
