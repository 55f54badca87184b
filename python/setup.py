"""Installs the pure-Python package ``anomalydino`` (the C library is found at run time).

Deliberately a setup.py-only project (no pyproject.toml): pip then builds it with the
setuptools and wheel already present (Debian's python3-setuptools / python3-wheel, visible in
a ``--system-site-packages`` venv) instead of downloading them into an isolated build
environment, so ``pip install ./python`` works offline.

A copy of libanomalydino.so.0 dropped into anomalydino/ before installing is installed with
the package and found first after ANOMALYDINO_LIB (docs/python.md).
"""
from setuptools import setup

setup(
    name="anomalydino",
    version="0.1.0",
    description="AnomalyDINO (DINOv2 few-shot anomaly detection) over the libanomalydino C "
                "library: ctypes + numpy, no PyTorch",
    packages=["anomalydino"],
    package_data={"anomalydino": ["py.typed", "libanomalydino.so*"]},
    python_requires=">=3.8",
    install_requires=["numpy"],  # Debian's python3-numpy, seen through --system-site-packages
    zip_safe=False,
)
