"""Specs of EMNIST (six splits) and QMNIST, in torchvision's layout and file names.

EMNIST (Cohen et al. 2017, "EMNIST: an extension of MNIST to handwritten
letters", arXiv:1702.05373):

* files: ``<root>/EMNIST/raw/emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte``,
  the names ``torchvision.datasets.EMNIST`` reads. The official source is one
  archive, ``gzip.zip`` (URL and md5 from ``torchvision.datasets.EMNIST.url`` /
  ``.md5``), holding ``gzip/emnist-<split>-...-ubyte.gz`` for every split;
  its md5 is checked before any member is used. No md5 of the single files is
  published, so files from a mirror folder are checked for structure only.
* counts: the paper's Table II (byclass/bymerge 697,932 + 116,323; balanced
  112,800 + 18,800; letters 124,800 + 20,800; digits 240,000 + 40,000;
  mnist 60,000 + 10,000).
* images are stored transposed (``transposed=True``); letters are labelled
  1..26 (``label_offset=1``). torchvision's class does neither fix (its
  ``letters`` classes start with ``"N/A"``); this package does both.
* classes: ``torchvision.datasets.EMNIST.classes_split_dict``, without
  letters' ``"N/A"``: letters ``"a".."z"`` (upper and lower case merged),
  balanced/bymerge ``0-9, A-Z`` and the 11 lower-case letters that differ from
  their capitals, byclass ``0-9, A-Z, a-z``.

QMNIST (Yadav & Bottou 2019, "Cold Case: The Lost MNIST Digits"): the ``.gz``
files and md5 sums of ``torchvision.datasets.QMNIST.resources`` (``train`` and
``test``); train 60,000 images, test 60,000 (the first 10,000 match MNIST's
test set, the other 50,000 are the "lost" digits). Labels are int32 rows of 8
columns; column 0 is the class.

mean/std: None for all of them (no published values): computed from the train
split at first use and cached (:func:`mnistcnn.data.dataset_normalization`).
"""

from __future__ import annotations

from mnistcnn.data.specs import ArchiveSpec, DatasetSpec, IdxFileSpec, SplitFiles

#: split -> (train count, test count), from the EMNIST paper's Table II.
EMNIST_COUNTS: dict[str, tuple[int, int]] = {
    "balanced": (112_800, 18_800),
    "byclass": (697_932, 116_323),
    "bymerge": (697_932, 116_323),
    "digits": (240_000, 40_000),
    "letters": (124_800, 20_800),
    "mnist": (60_000, 10_000),
}


def emnist_spec(split: str) -> DatasetSpec:
    """The spec of EMNIST split ``split`` (a key of :data:`EMNIST_COUNTS`)."""
    from torchvision import datasets as tvd

    classes = [c for c in tvd.EMNIST.classes_split_dict[split] if c != "N/A"]
    files = {}
    for i, part in enumerate(("train", "test")):
        prefix = f"emnist-{split}-{part}"
        n = EMNIST_COUNTS[split][i]
        files[part] = SplitFiles(
            images=IdxFileSpec(f"{prefix}-images-idx3-ubyte", "images", n, None),
            labels=IdxFileSpec(f"{prefix}-labels-idx1-ubyte", "labels", n, None),
        )
    url: str = tvd.EMNIST.url
    return DatasetSpec(
        name=f"emnist-{split}",
        folder="EMNIST",
        tv_class=tvd.EMNIST,
        classes=tuple(classes),
        files=files,
        mirrors=(),
        mean=None,
        std=None,
        tv_kwargs={"split": split},
        transposed=True,
        label_offset=1 if split == "letters" else 0,
        archive=ArchiveSpec(url.rsplit("/", 1)[-1], tvd.EMNIST.md5, (url,)),
    )


def qmnist_spec() -> DatasetSpec:
    """The spec of QMNIST (``what="train"`` and ``what="test"`` of torchvision's class)."""
    from torchvision import datasets as tvd

    resources = tvd.QMNIST.resources
    files = {}
    bases = []
    for part in ("train", "test"):
        (img_url, img_md5), (lbl_url, lbl_md5) = resources[part]
        bases.append(img_url.rsplit("/", 1)[0] + "/")
        files[part] = SplitFiles(
            images=IdxFileSpec(_stem(img_url), "images", 60_000, None, img_md5),
            labels=IdxFileSpec(_stem(lbl_url), "extended-labels", 60_000, None, lbl_md5),
        )
    return DatasetSpec(
        name="qmnist",
        folder="QMNIST",
        tv_class=tvd.QMNIST,
        classes=tuple(tvd.QMNIST.classes),
        files=files,
        mirrors=tuple(dict.fromkeys(bases)),
        mean=None,
        std=None,
    )


def _stem(url: str) -> str:
    """``.../qmnist-train-images-idx3-ubyte.gz`` -> ``qmnist-train-images-idx3-ubyte``."""
    name = url.rsplit("/", 1)[-1]
    return name[: -len(".gz")] if name.endswith(".gz") else name


def build_extra(name: str) -> DatasetSpec:
    """The spec of ``"emnist-<split>"`` or ``"qmnist"``.

    Raises:
        KeyError: any other name.
    """
    if name == "qmnist":
        return qmnist_spec()
    prefix = "emnist-"
    if name.startswith(prefix) and name[len(prefix) :] in EMNIST_COUNTS:
        return emnist_spec(name[len(prefix) :])
    raise KeyError(name)
