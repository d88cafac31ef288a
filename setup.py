"""Build and install igrsr.

``kernels/`` is installed as the subpackage ``igrsr.kernels``.
"""

from setuptools import find_packages, setup

packages = find_packages(include=["igrsr", "igrsr.*"])
packages += ["igrsr.kernels"] + ["igrsr.kernels." + p for p in find_packages("kernels")]

setup(
    name="igrsr",
    version="0.1.0",
    description="Intent-guided sequential recommendation (IGR-SR) with fused Triton and CUDA layers",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=packages,
    package_dir={"igrsr.kernels": "kernels"},
    package_data={"igrsr.kernels": ["cuda/*.cu", "cuda/*.cuh", "cuda/*.h"]},
    install_requires=[
        "torch>=2.3",
        "numpy",
        "tqdm",
        "matplotlib",
        "triton; platform_system == 'Linux' and platform_machine == 'x86_64'",
    ],
    extras_require={"test": ["pytest", "pytest-benchmark", "hypothesis"]},
    entry_points={"console_scripts": ["igrsr = igrsr.cli:main"]},
)
