"""Triton kernels, one module per op.  Every module but ``interpreter`` requires Triton."""
