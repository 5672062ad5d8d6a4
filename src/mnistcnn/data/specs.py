"""Dataset specifications: each dataset described by data, as torchvision's ``mnist.py`` does.

A :class:`DatasetSpec` says where a dataset's four IDX files live
(``<root>/<folder>/raw/``, the layout torchvision's own classes read), how many
items and which checksums they have, where to get them, and its normalization
constants. The registry is an immutable table.

Sources of the constants:
    * file names, ``mirrors``, ``.gz`` md5 sums, ``classes``: torchvision's
      ``MNIST``/``FashionMNIST``/``KMNIST`` classes (``mirrors``, ``resources``,
      ``classes``), read from the installed torchvision.
    * md5 of the uncompressed MNIST and Fashion-MNIST files: the original
      distributions (as listed in ``../shared/datasets/README.md``).
    * mean/std: pixel mean and standard deviation of the train split on the
      0..1 scale (recomputed by :func:`mnistcnn.data.dataset_info`); None for
      EMNIST and QMNIST, whose values are computed from the train split at first
      use and cached (:func:`mnistcnn.data.dataset_normalization`).
    * EMNIST (six splits, one official ``gzip.zip``) and QMNIST:
      :mod:`mnistcnn.data.extra_specs`.

Specs are built on first use, so importing this module does not import
torchvision (about 2 s).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from mnistcnn.data.idx import IdxKind, idx_size
from mnistcnn.errors import SettingError
from mnistcnn.prepare.records import preparation_method as preparation_method  # re-exported

SPLITS = ("train", "test")
# md5 sums of train images, train labels, test images, test labels (None: unknown)
Md5s = tuple[str | None, str | None, str | None, str | None]


@dataclass(frozen=True)
class IdxFileSpec:
    """One IDX file of a dataset.

    Attributes:
        name: uncompressed file name, e.g. ``"train-images-idx3-ubyte"``.
        kind: ``"images"`` (uint8 (N, 28, 28)) or ``"labels"`` (uint8 (N,)).
        count: number of images or labels.
        md5: md5 of the uncompressed file, or None if unknown.
        gz_md5: md5 of the official ``.gz`` file, or None; only checked when
            ``md5`` is None (re-compressed copies differ but hold the same data).
    """

    name: str
    kind: IdxKind
    count: int
    md5: str | None
    gz_md5: str | None = None

    @property
    def gz_name(self) -> str:
        """The compressed file name, ``name + ".gz"``."""
        return self.name + ".gz"

    def size(self, image_shape: tuple[int, int] = (28, 28)) -> int:
        """Exact length of the uncompressed file in bytes."""
        return idx_size(self.kind, self.count, image_shape)


@dataclass(frozen=True)
class ArchiveSpec:
    """An official archive that holds the ``.gz`` files (EMNIST's ``gzip.zip``).

    Attributes:
        name: file name of the archive, e.g. ``"gzip.zip"``.
        md5: md5 of the whole archive (always checked before any member is used).
        urls: official URLs of the archive.
        max_bytes: refuse a download or file larger than this.
    """

    name: str
    md5: str
    urls: tuple[str, ...]
    max_bytes: int = 1 << 30


@dataclass(frozen=True)
class SplitFiles:
    """The images file and labels file of one split (same ``count``)."""

    images: IdxFileSpec
    labels: IdxFileSpec


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the data layer knows about one dataset.

    Attributes:
        name: registry name, e.g. ``"fashion-mnist"``.
        folder: torchvision's class name, which is also its folder under the root
            (``<root>/<folder>/raw/``), e.g. ``"FashionMNIST"``.
        tv_class: the torchvision dataset class (``torchvision.datasets.FashionMNIST``), or
            its name in ``torchvision.datasets`` (``"FashionMNIST"``), resolved on first use by
            :meth:`torchvision_class`: importing torchvision costs about a second, which
            reading the IDX files never needs.
        classes: class names, index = label.
        files: ``{"train": SplitFiles, "test": SplitFiles}`` (read-only mapping).
        mirrors: official base URLs, each ending in ``/`` (torchvision's list).
        mean, std: train-split pixel mean and std on the 0..1 scale; None: not
            published, computed from the train split at first use and cached
            (:func:`mnistcnn.data.dataset_normalization`).
        system_dirs: folders where an OS package installs the ``.gz`` files.
        pypi_fallback: whether the PyPI wheel fallback applies (MNIST only).
        image_shape: (height, width) in pixels.
        tv_kwargs: extra arguments of ``tv_class`` (EMNIST: ``{"split": "letters"}``).
        transposed: the files store each image transposed (EMNIST); every
            reader of this package transposes them back, so images read upright.
        label_offset: the stored label of class 0 (EMNIST letters: 1, as
            ``a`` is stored as 1); readers subtract it, so labels are 0-based.
        archive: an official archive holding the ``.gz`` files (EMNIST), tried
            after the per-file sources.
        preparation: how the dataset's pictures were made into 28x28 images, a
            method of :data:`mnistcnn.prepare.records.PREPARATIONS` (``"mnist"``,
            ``"fashion-mnist"``, ``"kmnist"``, ``"emnist"``); training records it in
            the checkpoint so that ``predict`` prepares pictures the same way.
    """

    name: str
    folder: str
    tv_class: type | str
    classes: tuple[str, ...]
    files: Mapping[str, SplitFiles] = field(hash=False)
    mirrors: tuple[str, ...]
    mean: float | None
    std: float | None
    system_dirs: tuple[str, ...] = ()
    pypi_fallback: bool = False
    image_shape: tuple[int, int] = (28, 28)
    tv_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    transposed: bool = False
    label_offset: int = 0
    archive: ArchiveSpec | None = None
    preparation: str = "mnist"

    def __post_init__(self) -> None:
        if set(self.files) != set(SPLITS):
            raise ValueError(f"{self.name}: files needs splits {SPLITS}, got {sorted(self.files)}")
        tv_name = self.tv_class if isinstance(self.tv_class, str) else self.tv_class.__name__
        if self.folder != tv_name:
            raise ValueError(
                f"{self.name}: folder {self.folder!r} must equal the torchvision class name "
                f"{tv_name!r} (torchvision reads <root>/<ClassName>/raw/)"
            )
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "mirrors", tuple(self.mirrors))
        object.__setattr__(self, "system_dirs", tuple(self.system_dirs))
        object.__setattr__(self, "tv_kwargs", MappingProxyType(dict(self.tv_kwargs)))

    def torchvision_class(self) -> type:
        """The torchvision dataset class that reads this dataset (imports torchvision)."""
        if not isinstance(self.tv_class, str):
            return self.tv_class
        from torchvision import datasets as tvd

        cls: type = getattr(tvd, self.tv_class)
        return cls

    @property
    def num_classes(self) -> int:
        """Number of classes (labels are 0..num_classes-1)."""
        return len(self.classes)

    def all_files(self) -> tuple[IdxFileSpec, ...]:
        """The four files: train images, train labels, test images, test labels."""
        return tuple(f for s in SPLITS for f in (self.files[s].images, self.files[s].labels))

    def raw_dir(self, root: Path) -> Path:
        """``<root>/<folder>/raw``, where torchvision's class looks for the files."""
        return root / self.folder / "raw"


def make_files(
    counts: tuple[int, int],
    md5s: Md5s = (None, None, None, None),
    gz_md5s: Md5s = (None, None, None, None),
) -> dict[str, SplitFiles]:
    """Build ``files`` with the standard MNIST file names.

    Args:
        counts: (train count, test count).
        md5s, gz_md5s: for train images, train labels, test images, test labels.
    """
    out = {}
    for i, (split, prefix) in enumerate((("train", "train"), ("test", "t10k"))):
        out[split] = SplitFiles(
            images=IdxFileSpec(
                f"{prefix}-images-idx3-ubyte", "images", counts[i], md5s[2 * i], gz_md5s[2 * i]
            ),
            labels=IdxFileSpec(
                f"{prefix}-labels-idx1-ubyte",
                "labels",
                counts[i],
                md5s[2 * i + 1],
                gz_md5s[2 * i + 1],
            ),
        )
    return out


class _Row(NamedTuple):
    """One registered dataset as data: torchvision's class attributes copied, not imported.

    ``mirrors``, ``gz_md5s`` and ``classes`` are torchvision's ``mirrors``,
    ``resources`` and ``classes`` of the class named ``folder``
    (``torchvision/datasets/mnist.py``, torchvision 0.29); tests/test_data_real.py
    checks that they still agree. They are copied so that reading a dataset does
    not import torchvision (about a second: it loads torch._dynamo through
    torchvision.ops).
    """

    folder: str  # torchvision class name
    md5s: Md5s  # uncompressed train images, train labels, test images, test labels
    gz_md5s: Md5s  # the .gz files, same order
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    mean: float
    std: float
    system_dirs: tuple[str, ...] = ()
    pypi_fallback: bool = False


def _from_row(name: str, row: _Row) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        folder=row.folder,
        tv_class=row.folder,  # resolved by DatasetSpec.torchvision_class() when needed
        classes=row.classes,
        files=make_files((60000, 10000), row.md5s, row.gz_md5s),
        mirrors=row.mirrors,
        mean=row.mean,
        std=row.std,
        system_dirs=row.system_dirs,
        pypi_fallback=row.pypi_fallback,
    )


_TABLE: Mapping[str, _Row] = MappingProxyType(
    {
        "fashion-mnist": _Row(
            "FashionMNIST",
            (
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "9018921c3c673c538a1fc5bad174d6f9",
                "8181f5470baa50b63fa0f6fddb340f0a",
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
            (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
            mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
            classes=(
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),  # fmt: skip
            mean=0.2860,
            std=0.3530,
            system_dirs=("/usr/share/datasets/fashion-mnist",),
        ),
        "kmnist": _Row(
            "KMNIST",
            (None, None, None, None),
            (
                "bdb82020997e1d708af4cf47b453dcf7",
                "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "7320c461ea6c1c855c0b718fb2a4b134",
            ),
            mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            mean=0.1918,
            std=0.3483,
        ),
        "mnist": _Row(
            "MNIST",
            (
                "6bbc9ace898e44ae57da46a324031adb",
                "a25bea736e30d166cdddb491f175f624",
                "2646ac647ad5339dbf082846283269ea",
                "27ae3e4e09519cfbb04c329615203637",
            ),
            (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
            mirrors=(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ),
            classes=(
                "0 - zero",
                "1 - one",
                "2 - two",
                "3 - three",
                "4 - four",
                "5 - five",
                "6 - six",
                "7 - seven",
                "8 - eight",
                "9 - nine",
            ),  # fmt: skip
            mean=0.1307,
            std=0.3081,
            pypi_fallback=True,
        ),
    }
)
_ALIASES: Mapping[str, str] = MappingProxyType({r.folder.lower(): n for n, r in _TABLE.items()})
#: EMNIST's six splits and QMNIST (built by :mod:`mnistcnn.data.extra_specs`).
_EXTRA_NAMES: tuple[str, ...] = (
    "emnist-balanced",
    "emnist-byclass",
    "emnist-bymerge",
    "emnist-digits",
    "emnist-letters",
    "emnist-mnist",
    "qmnist",
)


@functools.cache
def _build(name: str) -> DatasetSpec:
    """The spec of registered ``name`` (built on first use; EMNIST, QMNIST import torchvision)."""
    from dataclasses import replace

    if name in _EXTRA_NAMES:
        from mnistcnn.data.extra_specs import build_extra

        return replace(build_extra(name), preparation=preparation_method(name))
    return replace(_from_row(name, _TABLE[name]), preparation=preparation_method(name))


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted: ``["emnist-balanced", ..., "qmnist"]``."""
    return sorted([*_TABLE, *_EXTRA_NAMES])


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of dataset ``name`` (the same object on every call).

    Case and ``_``/``-`` are ignored, and torchvision's class names are accepted
    (``"FashionMNIST"`` -> ``"fashion-mnist"``).

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    if name.startswith("folder:"):  # mnistcnn.data.folder: pictures, no spec, no test split
        raise SettingError(
            f"dataset {name!r} is a picture folder: it has no test split and no files to "
            f"fetch; evaluate a model trained on it on pictures: `mnistcnn evaluate CKPT "
            f"--images {name[len('folder:') :]}`",
            setting="dataset",
        )
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _TABLE and key not in _EXTRA_NAMES:
        raise SettingError(
            f"dataset {name!r} is unknown; valid datasets: {', '.join(list_datasets())}",
            setting="dataset",
        )
    return _build(key)


def same_class_names(a: Sequence[str], b: Sequence[str]) -> bool:
    """True if ``a`` and ``b`` name the same classes in the same order.

    Names are compared as predictions report them (``"7 - seven"`` as ``"7"``),
    so a checkpoint that stores plain ``"0".."9"`` matches MNIST's digits.
    """

    def short(names: Sequence[str]) -> list[str]:
        return [n.split(" - ")[0] if " - " in n else n for n in names]

    return short(a) == short(b)


def shown_class_names(names: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` class names (short form), ``", ..."`` when there are more."""
    listed = ", ".join(n.split(" - ")[0] if " - " in n else n for n in names[:limit])
    return listed + (", ..." if len(names) > limit else "")


def check_model_classes(
    classes: Sequence[str],
    dataset: str,
    *,
    subject: str,
    model_dataset: str = "",
    advice: str = "a model can only be tested on a dataset of its own classes",
) -> None:
    """Refuse to use a model of ``classes`` on ``dataset`` when its classes are other ones.

    The shared check behind ``evaluate --dataset`` (and ``explain``'s dataset
    samples): an MNIST model scored on Fashion-MNIST would report a
    meaningless accuracy under digit names. ``subject`` starts the message
    (a checkpoint path); ``model_dataset``: the dataset the model was trained
    on, named in the message; ``advice`` ends it.

    Raises:
        ValueError: unknown ``dataset``, or ``classes`` are not its classes
            (compared by :func:`same_class_names`).
    """
    spec = get_spec(dataset)
    if same_class_names(classes, spec.classes):
        return
    trained = f" (trained on {model_dataset})" if model_dataset else ""
    raise SettingError(
        f"{subject}: the model's classes{trained} are not {spec.name}'s: it knows "
        f"{shown_class_names(classes)}, {spec.name} has {shown_class_names(spec.classes)}; "
        f"{advice}"
    )
