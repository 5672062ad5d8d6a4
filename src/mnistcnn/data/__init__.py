"""The data layer: obtain, verify and load MNIST-style IDX datasets.

Public API::

    list_datasets() -> ["emnist-balanced", ..., "fashion-mnist", "kmnist", "mnist", "qmnist"]
    get_spec(name) -> DatasetSpec
    check_model_classes(classes, name, subject=...)  # ValueError: a model of other classes
    resolve_root(root) -> Path            # arg, else $MNISTCNN_DATA, else ~/.cache/mnistcnn
    fetch_dataset(name, root, mirror, ...) -> FetchResult
    load_dataset(name, train, root, mirror, transform, ...) -> torchvision dataset
    load_arrays(name, train, root, mirror, ...) -> (uint8 (N, 28, 28), int64 (N,))
    dataset_normalization(name, root, mirror) -> (mean, std)  # EMNIST/QMNIST: computed, cached
    dataset_info(name, root, mirror) -> dict
    read_idx(path) / write_idx(path, array) / validate_idx_file(path, kind, ...)

Errors: :class:`DataError` (base), :class:`IDXError` (a bad file),
:class:`SourceError` (every source failed).
"""

from mnistcnn.data.datasets import (
    dataset_info,
    dataset_normalization,
    load_arrays,
    load_dataset,
    pixel_stats,
)
from mnistcnn.data.errors import DataError, IDXError, SourceError
from mnistcnn.data.idx import (
    IdxHeader,
    read_idx,
    read_idx_header,
    validate_idx_file,
    validate_pair,
    write_idx,
)
from mnistcnn.data.sources import FetchResult, fetch_dataset, resolve_mirror, resolve_root
from mnistcnn.data.specs import (
    DatasetSpec,
    IdxFileSpec,
    SplitFiles,
    check_model_classes,
    get_spec,
    list_datasets,
    same_class_names,
)

__all__ = [
    "DataError",
    "DatasetSpec",
    "FetchResult",
    "IDXError",
    "IdxFileSpec",
    "IdxHeader",
    "SourceError",
    "SplitFiles",
    "check_model_classes",
    "dataset_info",
    "dataset_normalization",
    "fetch_dataset",
    "get_spec",
    "list_datasets",
    "load_arrays",
    "load_dataset",
    "pixel_stats",
    "read_idx",
    "read_idx_header",
    "resolve_mirror",
    "resolve_root",
    "same_class_names",
    "validate_idx_file",
    "validate_pair",
    "write_idx",
]
