"""Device code, installed as ``igrsr.kernels``: Triton kernels (``triton/``) and
torch-free CUDA sources (``cuda/``).  Imported only by :mod:`igrsr.ops`."""
