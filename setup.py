"""Build shim: package discovery that pyproject.toml cannot express on its own.

pyproject.toml's ``packages.find`` only discovers packages under their own folder names, so
it cannot add ``spatial_mg.data_manifests``, whose files live in ``data_manifests/`` at the
top of the repository. Everything else is configured in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["spatial_mg*"]), "spatial_mg.data_manifests"])
