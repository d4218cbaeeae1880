"""Real data sets by name: ``pipekit.datasets.path("adult_sample")``.

>>> import pipekit.datasets as D
>>> sorted(D.REGISTRY)[:3]
['adult_sample', 'camvid_tiny', 'coco_tiny']
"""
from pipekit.data.external import (REGISTRY, URLs, Checksum, DatasetInfo, available, cache_root, data_root, extract,
                                   fetch, locate, path, read_idx, register_dataset, untar_data)

__all__ = ["REGISTRY", "Checksum", "DatasetInfo", "available", "cache_root", "data_root", "extract", "fetch", "locate",
           "path", "read_idx", "register_dataset", "untar_data", "URLs"]
