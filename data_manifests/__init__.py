"""YAML manifests of the real datasets; installed as the package ``spatial_mg.data_manifests``.

Read them with :func:`spatial_mg.datasets.get_manifest` or ``spatial-mg fetch --list``.
"""
