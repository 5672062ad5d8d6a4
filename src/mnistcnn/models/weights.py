"""torchvision's ImageNet weight files, found without the internet when they are already here.

Lookup order of :func:`locate_weights` (the ``weights`` setting, ``--weights``):

1. the file given (``weights=FILE``);
2. torch's hub cache, ``$TORCH_HOME/hub/checkpoints/<torchvision's file name>``
   (``torch.hub.get_dir()``; where torchvision itself keeps and looks for them);
3. a download from torchvision's URL when online, with a connect/read timeout and
   an overall deadline (:func:`mnistcnn.data.download.download`: never hangs),
   verified before it is placed in the cache;
4. one error (:class:`WeightsMissingError`) naming the URL, the file name, the
   expected SHA-256 prefix and the folder to put the file in.

The hash is checked as ``torch.hub`` checks it (``download_url_to_file(...,
hash_prefix)`` with ``HASH_REGEX = r"-([a-f0-9]*)\\."``): the SHA-256 hex digest
of the file must start with the digits after the last ``-`` of torchvision's file
name (``resnet50-11ad3fa6.pth``: ``11ad3fa6``). A cached or imported file with
another digest is refused (:class:`WeightsHashError`); a file given explicitly
(``weights=FILE``: your own ImageNet training, say) may differ, with a warning,
but must hold the architecture's tensors (:class:`WeightsArchitectureError`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.hub import HASH_REGEX
from torchvision.models import get_model, get_model_weights

from mnistcnn._io import atomic_path, file_digest
from mnistcnn.errors import MnistcnnError

log = logging.getLogger(__name__)

#: The networks with torchvision ImageNet weights that mnistcnn fine-tunes and shows.
IMAGENET_MODELS = ("vgg19", "resnet50", "googlenet")

#: What torchvision's builder passes when it builds a network for its weights file
#: (``googlenet(weights=...)`` builds the auxiliary classifiers, whose tensors are in
#: the file, then drops them); every builder also gets ``num_classes=1000``.
TORCHVISION_BUILD_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": True, "init_weights": False},
}

#: Seconds to connect and for each read of a weights download.
DOWNLOAD_TIMEOUT = 10.0


class WeightsError(MnistcnnError):
    """ImageNet weights cannot be used; the message names the file and what to do."""


class WeightsMissingError(WeightsError, FileNotFoundError):
    """No weights file: not given, not in the hub cache, and the download failed."""


class WeightsHashError(WeightsError):
    """A file's SHA-256 does not start with the prefix in torchvision's file name."""


class WeightsArchitectureError(WeightsError):
    """A file does not hold the architecture's tensors (another network, or not weights)."""


@dataclass(frozen=True)
class WeightsFile:
    """One torchvision weights file, as its ``WeightsEnum`` describes it.

    Attributes:
        model: torchvision's model name (``"resnet50"``).
        weights: the enum member's name (``"ResNet50_Weights.IMAGENET1K_V2"``).
        url: where torchvision downloads it.
        file_name: its name in the hub cache (the URL's last part).
        hash_prefix: the hex digits in the name: the start of the file's SHA-256.
        size_mb: its size per torchvision's metadata (``_file_size``), MB (10**6 bytes).
        categories: the 1,000 ImageNet class names (``meta["categories"]``).
    """

    model: str
    weights: str
    url: str
    file_name: str
    hash_prefix: str
    size_mb: float
    categories: tuple[str, ...]

    @property
    def cache_path(self) -> Path:
        """``<torch.hub.get_dir()>/checkpoints/<file_name>``."""
        return checkpoints_dir() / self.file_name


def checkpoints_dir() -> Path:
    """torch's hub cache of weight files: ``$TORCH_HOME/hub/checkpoints``.

    ``TORCH_HOME`` defaults to ``~/.cache/torch`` (``torch.hub.get_dir()``).
    """
    return Path(torch.hub.get_dir()) / "checkpoints"


def check_imagenet_model(model: str, setting: str = "model") -> None:
    """Raise :class:`WeightsError` (naming ``setting``) unless ``model`` has weights here."""
    if model not in IMAGENET_MODELS:
        raise WeightsError(
            f"no ImageNet weights for model {model!r}; pretrained models: "
            + ", ".join(IMAGENET_MODELS),
            setting=setting,
        )


def torchvision_weights(model: str) -> Any:
    """torchvision's default ``WeightsEnum`` member of ``model`` (``ResNet50_Weights.DEFAULT``)."""
    check_imagenet_model(model)
    return get_model_weights(model).DEFAULT


def weights_file(model: str) -> WeightsFile:
    """The :class:`WeightsFile` of ``model``'s default torchvision weights.

    Raises:
        WeightsError: ``model`` is not one of :data:`IMAGENET_MODELS`.
    """
    w = torchvision_weights(model)
    name = w.url.rsplit("/", 1)[-1]
    match = HASH_REGEX.search(name)
    return WeightsFile(
        model=model,
        weights=f"{type(w).__name__}.{w.name}",
        url=w.url,
        file_name=name,
        hash_prefix=match.group(1) if match else "",
        size_mb=float(w.meta.get("_file_size", 0.0)),
        categories=tuple(w.meta["categories"]),
    )


def expected_sha256_prefix(info: WeightsFile) -> str:
    """The hex digits a file's SHA-256 must start with: the prefix in torchvision's name.

    (The tests replace this function to accept generated stand-in files.)
    """
    return info.hash_prefix


def hash_matches(path: Path, info: WeightsFile) -> tuple[bool, str]:
    """(whether ``path``'s SHA-256 starts with the expected prefix, the digest)."""
    digest = file_digest(path)
    return digest.startswith(expected_sha256_prefix(info)), digest


def check_hash(path: Path, info: WeightsFile) -> None:
    """Refuse a file whose SHA-256 does not start with the expected prefix.

    Raises:
        WeightsHashError: naming the file, both digests and the URL of the right file.
    """
    ok, digest = hash_matches(path, info)
    if not ok:
        raise WeightsHashError(
            f"{path}: SHA-256 {digest[:16]}... does not start with "
            f"{expected_sha256_prefix(info)}, so it is not torchvision's {info.file_name} "
            f"({info.weights}); a partial download or another file. Delete it and get "
            f"{info.url}",
            path=path,
        )


def _skeleton(model: str) -> nn.Module:
    """The architecture torchvision loads ``model``'s file into, on the meta device (no memory)."""
    with torch.device("meta"):
        return get_model(
            model, weights=None, num_classes=1000, **TORCHVISION_BUILD_KWARGS.get(model, {})
        )


def read_state_dict(path: Path, info: WeightsFile) -> dict[str, torch.Tensor]:
    """The tensors of weights file ``path``, checked against ``info.model``'s architecture.

    Loaded with ``torch.load(weights_only=True)`` on the CPU; every key and shape
    must be those of torchvision's ``info.model`` (built for 1,000 classes).

    Raises:
        WeightsArchitectureError: not a state dict, or one of another network
            (the message names missing/unexpected keys or the first shape that differs).
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsArchitectureError(
            f"{path}: not a PyTorch weights file ({type(exc).__name__}: {str(exc)[:200]})",
            path=path,
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsArchitectureError(
            f"{path}: not a state dict of tensors (got {type(state).__name__})", path=path
        )
    expected = _skeleton(info.model).state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    what = ""
    if missing or unexpected:
        what = f"{len(missing)} of its tensors missing (e.g. {missing[:2]}), " * bool(missing)
        what += f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})" * bool(unexpected)
    else:
        for key, tensor in expected.items():
            if tuple(state[key].shape) != tuple(tensor.shape):
                what = f"{key} is {tuple(state[key].shape)}, expected {tuple(tensor.shape)}"
                break
    if what:
        raise WeightsArchitectureError(
            f"{path}: does not hold torchvision's {info.model} tensors (another architecture): "
            + what.rstrip(", "),
            path=path,
        )
    return state


def locate_weights(
    model: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """The weights file of ``model``: ``weights``, else the hub cache, else a download.

    See the module docstring for the order and the checks. A download goes to
    ``<file>.part`` in the cache folder and is renamed into place only once its
    hash is right.

    Raises:
        WeightsError: unknown model. WeightsMissingError: ``weights`` does not
        exist, or no file and no download (the message says where to put it).
        WeightsHashError: the cached or downloaded file has the wrong hash.
    """
    info = weights_file(model)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise WeightsMissingError(
                f"{path}: no such file (weights)", path=path, setting="weights"
            )
        ok, digest = hash_matches(path, info)
        if not ok:
            log.warning(
                "%s: SHA-256 %s... is not torchvision's %s (%s...); using it as given",
                path, digest[:12], info.file_name, expected_sha256_prefix(info),
            )  # fmt: skip
        return path
    cached = info.cache_path
    if cached.is_file():
        check_hash(cached, info)
        return cached
    why = "downloads are off"
    if download:
        try:
            return _download(info, timeout)
        except WeightsHashError:
            raise
        except (MnistcnnError, OSError) as exc:
            why = f"the download failed: {exc}"
    raise WeightsMissingError(missing_message(info, why), path=cached, setting="weights")


def missing_message(info: WeightsFile, why: str) -> str:
    """What to do when ``info``'s file is nowhere: the URL, name, hash prefix and folder."""
    return (
        f"no weights file given for {info.model}'s ImageNet weights ({info.weights}), none in "
        f"torch's hub cache, and {why}. Download {info.url} ({info.size_mb:g} MB; its SHA-256 "
        f"starts with {expected_sha256_prefix(info)}) on a machine with internet and put it in "
        f"{checkpoints_dir()} as {info.file_name} (or `mnistcnn weights import FILE`)"
    )


def _download(info: WeightsFile, timeout: float) -> Path:
    """Fetch ``info.url`` into the hub cache, checking its hash before it is renamed there."""
    from mnistcnn.data.download import download, per_file_deadline

    dest = info.cache_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    max_bytes = int(info.size_mb * 1.05e6) + (1 << 20)
    deadline = max(per_file_deadline(timeout), info.size_mb * 2.0)  # >= 0.5 MB/s
    log.info("downloading %s to %s", info.url, dest)
    with atomic_path(dest) as part:  # named dest only once its hash is checked
        download(info.url, part, timeout=timeout, deadline=deadline, max_bytes=max_bytes)
        check_hash(part, info)
    return dest


def load_imagenet_state_dict(
    model: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> dict[str, torch.Tensor]:
    """``model``'s ImageNet tensors (:func:`locate_weights`, then :func:`read_state_dict`).

    Returns the state dict of torchvision's ``model`` for 1,000 classes, float32 on the CPU.
    Raises what those two raise.
    """
    path = locate_weights(model, weights, download=download, timeout=timeout)
    return read_state_dict(path, weights_file(model))
