"""Triton kernels (importing this package requires Triton)."""
