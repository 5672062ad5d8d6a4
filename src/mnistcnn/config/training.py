"""The settings of a training run: :class:`TrainConfig`, each field declared once with
:func:`~mnistcnn.config.settings.setting`, and what is read from those declarations
(:func:`setting_flag`, :func:`changes_math`)."""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any

from mnistcnn.config.settings import check_settings, check_value, setting
from mnistcnn.errors import SettingError

OPTIMIZERS = ("adam", "sgd", "adadelta")
SCHEDULERS = ("none", "step", "cosine", "onecycle")
LOADERS = ("dataloader", "tensor")
PRECISIONS = ("fp32", "bf16")
#: The largest seed: NumPy's global generator takes 0..2**32-1, and the data-order and
#: augmentation generators are seeded with ``seed * 1_000_003 + ...``, which must stay
#: below torch's limit of 2**64 (it does, with room, for every seed up to this one).
MAX_SEED = 2**32 - 1
AUGMENTATIONS = ("none", "affine", "affine-flip-erase", "robust")  # data.augment.build_augment
FREEZE_CHOICES = ("none", "backbone")  # mnistcnn.models.imagenet
#: The outlier kinds training can use (mnistcnn.data.outlier_pool).
OUTLIER_KINDS = ("fashion-mnist", "drawings", "letters", "noise")


def _recipe_names() -> list[str]:
    from mnistcnn.config.recipes import RECIPES  # recipes.py imports this module

    return sorted(RECIPES)


def setting_flag(name: str) -> str:
    """The command-line flag of a setting or argument: ``train_subset`` -> ``--train-subset``.

    A :class:`TrainConfig` field's declared ``flag`` wins; any other name is
    ``--`` + the name with dashes for underscores.
    """
    declared = _FIELDS.get(name)
    if declared is not None and declared.metadata.get("flag"):
        return str(declared.metadata["flag"])
    return "--" + name.replace("_", "-")


def changes_math(name: str, config: TrainConfig) -> bool:
    """Whether a change to setting ``name`` of ``config`` changes the computed weights.

    Read from the field's :func:`setting` declaration; an unknown name counts
    as changing the math (the safe side).
    """
    declared = _FIELDS.get(name)
    if declared is None or declared.metadata.get("math") is not False:
        condition = declared.metadata.get("math_if") if declared is not None else None
        return condition is None or bool(condition(config))
    return False


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run.

    The defaults are the ``tutorial`` recipe: the classic MNIST CNN tutorial's
    setup exactly (``ToTensor`` only, no normalization; batch 64; shuffled;
    cross-entropy; Adam with a constant learning rate of 0.01; 10 epochs).

    Attributes:
        recipe: name of the recipe the settings started from.
        dataset: dataset name (see ``mnistcnn.data.list_datasets()``).
        model: model name (see ``mnistcnn.models.list_models()``).
        epochs: number of passes over the training split (>= 1).
        batch_size: training images per optimizer step (>= 1).
        eval_batch_size: images per forward pass at evaluation (does not change results).
        lr: (peak) learning rate, finite and > 0.
        optimizer: one of ``adam``, ``sgd``, ``adadelta``.
        momentum: SGD momentum (ignored by the other optimizers).
        weight_decay: L2 penalty passed to the optimizer.
        scheduler: learning-rate schedule: ``none`` (constant), ``step``
            (multiply by ``gamma`` every ``step_size`` epochs), ``cosine``
            (cosine annealing to 0 over all steps), ``onecycle`` (Smith & Topin 2017).
        step_size: epochs between decays for ``step``.
        gamma: decay factor for ``step``.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        normalize: subtract the dataset's pixel mean and divide by its std
            (``False`` in the tutorial: inputs stay in [0, 1]).
        val_fraction: fraction of the training split held out (seeded) as a
            validation split, in [0, 1). ``best.pt`` is chosen on it when > 0.
        loader: ``tensor`` (the whole split as one uint8 tensor on the device;
            the default: every dataset here is MNIST-sized) or ``dataloader``
            (torchvision dataset + ``ToTensor`` + DataLoader). Same batches for
            the same seed.
        num_workers: DataLoader worker processes.
        seed: seeds Python, NumPy and torch, and the data order; 0..``MAX_SEED`` (2**32 - 1).
        device: ``auto`` (cuda, then mps, then cpu) or a torch device string.
        max_steps: stop after this many optimizer steps in total (smoke runs).
        train_subset: train on only the first N training images (quick runs, tests).
        deterministic: call ``torch.use_deterministic_algorithms(True)``.
        augment: training-batch augmentation: ``none``, ``affine`` (random
            rotation/translation/scale per sample, on the device; never at
            evaluation), ``affine-flip-erase`` (plus mirrors and random erasing,
            for clothing) or ``robust`` (mnistcnn.data.augment, augment_robust).
        aug_degrees: largest rotation of ``affine``, degrees.
        aug_translate: largest shift of ``affine``, fraction of the image size.
        aug_scale: largest relative zoom of ``affine`` (scale in [1 - s, 1 + s]).
        ema_decay: exponential moving average of the weights (and BatchNorm
            buffers) with this decay per step, in [0, 1); evaluation and
            checkpoints use the average. 0 turns it off.
        precision: ``fp32``, or ``bf16`` (autocast to bfloat16 for the forward
            pass on CPU and CUDA; weights and optimizer stay float32).
        channels_last: train in the channels-last memory format (faster convs
            with oneDNN/cuDNN; same math).
        warmup_fraction: fraction of the steps spent warming up in ``onecycle``
            (its ``pct_start``), in (0, 1).
        tensorboard: a TensorBoard log folder (``<run>/`` stands for the run
            folder; mnistcnn.engine.tblog), or None for none.
        report: write ``report.html`` and ``curves.png`` when training ends; off,
            ``mnistcnn train --resume RUN`` (:func:`mnistcnn.engine.train`) writes them later.
        keep_top: keep the checkpoints of the K best epochs in ``<run>/top/``
            (mnistcnn.engine.top_k), or None.
        pretrained: start ``model`` (vgg19, resnet50, googlenet) from torchvision's
            ImageNet weights (:mod:`mnistcnn.models.imagenet`).
        freeze: ``none`` or ``backbone`` (only the new classifier trains); needs ``pretrained``.
        weights: the ImageNet weights file (None: the hub cache, else a
            download; :mod:`mnistcnn.models.weights`); needs ``pretrained``.
        init: a trained checkpoint (path) whose weights the run starts from
            (fine-tuning): the same model; with other classes, its final
            classifier layer is replaced by a new one (``mnistcnn.engine.init``).
        outlier_exposure: weight of the outlier-exposure term (Hendrycks, Mazeika,
            Dietterich 2019; mnistcnn.engine.outlier_exposure), >= 0 (the paper: 0.5); 0: off.
        outliers: comma-separated outlier kinds (:data:`OUTLIER_KINDS`).
        outlier_batch_size: outliers added to every training batch (>= 1).
        outlier_count: generated pictures per generated outlier kind (>= 1).
        style_digits: generated digits of other writers' styles added to every training
            batch, as a fraction of ``batch_size``, [0, 1] (mnistcnn.data.styles); 0: off.
        style_count: generated digits in the run's pool of ``style_digits`` (>= 1).

    Each value is checked against its field's declaration (type, choices,
    range: :func:`~mnistcnn.config.settings.check_value`) when the config is
    made; only the rules that relate two settings are written out here.

    Raises:
        SettingError: naming the first setting at fault (``setting``), and
            listing every problem in its message.
    """

    recipe: str = setting(
        "tutorial",
        help="Starting point for every setting; flags below override it. tutorial: the "
        "classic CNN, 10 epochs; fast: 99 % on MNIST in one epoch, seconds on a laptop CPU; "
        "best: 99.7 %, 15 epochs; robust (the model "
        "for predict and serve) also needs Fashion-MNIST, whose train split it learns as "
        "non-digits: offline, `apt-get install dataset-fashion-mnist` or --mirror DIR with "
        "its .gz files. [default: tutorial]",
        math=True,  # recorded with the run; --recipe on resume does not re-apply the recipe
        choices=_recipe_names,
    )
    dataset: str = setting(
        "mnist",
        help="Dataset name: mnist, fashion-mnist, kmnist, qmnist or emnist-<split> (digits, "
        "letters, balanced, byclass, bymerge, mnist), or folder:PATH for your own labelled "
        "pictures in PATH/<class>/* (needs --val-fraction). [recipe: mnist]",
        math=True,
    )
    model: str = setting(
        "tutorial", help="Model name (see `mnistcnn models`). [recipe: tutorial]", math=True
    )
    epochs: int = setting(
        10,
        help="Passes over the training set. [recipe: 10]",
        math=True,
        # more epochs only append steps, unless the schedule spans all of them
        math_if=lambda c: c.scheduler in ("cosine", "onecycle"),
        min=1,
    )
    batch_size: int = setting(64, help="Images per step. [recipe: 64]", math=True, min=1)
    eval_batch_size: int = setting(
        1000, help="Images per forward pass at evaluation.", math=False, cli=False, min=1
    )
    lr: float = setting(0.01, help="Learning rate. [recipe: 0.01]", math=True, min=0, min_open=True)
    optimizer: str = setting("adam", help="[recipe: adam]", math=True, choices=OPTIMIZERS)
    momentum: float = setting(0.9, help="SGD momentum.", math=True, cli=False)
    weight_decay: float = setting(
        0.0, help="L2 penalty passed to the optimizer. [recipe: 0]", math=True, min=0
    )
    scheduler: str = setting(
        "none", help="Learning-rate schedule. [recipe: none]", math=True, choices=SCHEDULERS
    )
    step_size: int = setting(1, help="Epochs between decays of `step`.", math=True, cli=False)
    gamma: float = setting(0.7, help="Decay factor of `step`.", math=True, cli=False)
    label_smoothing: float = setting(
        0.0,
        help="Cross-entropy label smoothing (Szegedy et al. 2016). [recipe: 0]",
        math=True,
        min=0,
        max=1,
        max_open=True,
    )
    normalize: bool = setting(
        False, help="Normalize inputs with the dataset mean/std. [recipe: off]", math=True
    )
    val_fraction: float = setting(
        0.0,
        help="Hold out this fraction of train as validation; best.pt then follows it. [0]",
        math=True,
        min=0,
        max=1,
        max_open=True,
    )
    loader: str = setting(
        "tensor",
        help="dataloader (torchvision + DataLoader) or tensor (whole split on the device).",
        math=True,
        choices=LOADERS,
    )
    num_workers: int = setting(0, help="DataLoader worker processes.", math=False, cli=False, min=0)
    seed: int = setting(
        0, help="Seed for weights and data order. [0]", math=True, min=0, max=MAX_SEED
    )
    device: str = setting("auto", help="auto, cpu, cuda, cuda:1, mps. [auto]", math=False)
    max_steps: int | None = setting(
        None, help="Stop after this many steps in total (smoke test).", math=False, min=1
    )
    early_stopping: int | None = setting(
        None,
        help="Stop when the validation loss has not improved for this many epochs (needs "
        "--val-fraction > 0: stopping on the test loss would choose the model on the test split).",
        math=False,
        min=1,
    )
    train_subset: int | None = setting(
        None,
        help="Train on only the first N training images (quick experiments).",
        math=True,
        min=1,
    )
    deterministic: bool = setting(
        False,
        help="Use only deterministic algorithms (torch.use_deterministic_algorithms): "
        "repeatable runs on a GPU too, usually slower; an operation without a "
        "deterministic kernel stops with an error naming it.",
        math=False,
    )
    augment: str = setting(
        "none",
        help="Training-batch augmentation, on the device: affine (rotation, shift, zoom: "
        "handwriting), affine-flip-erase (shift, zoom, mirrors, random erasing: clothing) or "
        "robust (stroke width, elastic, slant, zoom, shift, blur, contrast, noise). [recipe: none]",
        math=True,
        choices=AUGMENTATIONS,
    )
    aug_degrees: float = setting(
        10.0, help="Largest rotation, degrees.", math=True, cli=False, min=0
    )
    aug_translate: float = setting(
        0.1, help="Largest shift, fraction of the image size.", math=True, cli=False,
        min=0, max=1, max_open=True,
    )  # fmt: skip
    aug_scale: float = setting(
        0.1, help="Largest relative zoom.", math=True, cli=False, min=0, max=1, max_open=True
    )
    ema_decay: float = setting(
        0.0, help="Decay of the weight average per step; 0: off.", math=True, cli=False,
        min=0, max=1, max_open=True,
    )  # fmt: skip
    precision: str = setting(
        "fp32",
        help="bf16: autocast on CPUs/GPUs that support it (faster, another rounding). "
        "[recipe: fp32]",
        math=True,
        choices=PRECISIONS,
    )
    channels_last: bool = setting(False, help="Channels-last memory format.", math=True, cli=False)
    warmup_fraction: float = setting(
        0.3, help="Warm-up fraction of `onecycle`.", math=True, cli=False,
        min=0, max=1, min_open=True, max_open=True,
    )  # fmt: skip
    extra: dict[str, Any] = setting(
        help="Free-form settings recorded with the run.",
        math=True,
        cli=False,
        default_factory=dict,
    )
    tensorboard: str | None = setting(
        None,
        help="Also log to TensorBoard (scalars, a sample grid, weight histograms) in DIR; "
        "<run>/ is the run folder. Needs mnistcnn[tensorboard]. [--tensorboard alone: "
        "<run>/tensorboard]",
        math=False,
        flag_value="<run>/tensorboard",  # mnistcnn.engine.tblog.DEFAULT_LOG_DIR
    )
    report: bool = setting(
        True,
        help="Write report.html and curves.png when training ends (after the result line). "
        "--no-report: neither (the fast recipe's default: they take seconds); `mnistcnn train "
        "--resume RUN` writes report.html later, on demand. [recipe: on]",
        math=False,
    )
    keep_top: int | None = setting(
        None,
        help="Keep the checkpoints of the K best epochs (best.pt's criterion) in <run>/top/.",
        math=False,
        min=1,
    )
    pretrained: bool = setting(
        False,
        help="Start from torchvision's ImageNet weights (vgg19, resnet50, googlenet): first "
        "conv summed to one gray channel, a new classifier, input resized inside. [off]",
        math=True,
    )
    freeze: str = setting(
        "none",
        help="With --pretrained: backbone trains only the new classifier. [none]",
        math=True,
        choices=FREEZE_CHOICES,
    )
    weights: str | None = setting(
        None,
        help="With --pretrained: the ImageNet weights file. [default: torch's hub cache, "
        "else a download]",
        math=True,
    )
    init: str | None = setting(
        None,
        help="Start from this trained checkpoint's weights (fine-tuning; the same model). "
        "Other classes than the checkpoint's: its final classifier layer is replaced.",
        math=True,
    )
    outlier_exposure: float = setting(
        0.0,
        help="Weight of outlier exposure (Hendrycks et al. 2019; 0.5 in the paper): every step "
        "also trains on non-digit images (--outliers) towards a uniform softmax, so that "
        "predict calls them unsure. 0: off. [recipe: 0]",
        math=True,
        min=0,
    )
    outliers: str = setting(
        "fashion-mnist,drawings,letters,noise",
        help="Outlier kinds of --outlier-exposure, comma-separated: fashion-mnist (its train "
        "split), drawings, letters, noise (generated).",
        math=True,
        math_if=lambda c: c.outlier_exposure > 0,
    )
    outlier_batch_size: int = setting(
        64,
        help="Outlier images added to every step of --outlier-exposure.",
        math=True,
        math_if=lambda c: c.outlier_exposure > 0,
        cli=False,
        min=1,
    )
    outlier_count: int = setting(
        3000,
        help="Generated pictures per outlier kind (drawings, letters, noise).",
        math=True,
        math_if=lambda c: c.outlier_exposure > 0,
        cli=False,
        min=1,
    )
    style_digits: float = setting(
        0.0,
        help="Generated digits of other writers' styles (crossed 7, flagged 1, open 4, "
        "looped 2, slashed 0, 9 with a straight or curled tail; thin and thick pens) added "
        "to every training batch, as a fraction of --batch-size: 0.2 adds 26 to 128. "
        "0: off. [recipe: 0]",
        math=True,
        min=0,
        max=1,
    )
    style_count: int = setting(
        20000,
        help="Generated digits in a run's pool of --style-digits.",
        math=True,
        math_if=lambda c: c.style_digits > 0,
        cli=False,
        min=1,
    )

    def __post_init__(self) -> None:
        found = [
            check_value(f.name, getattr(self, f.name), hint, f.metadata)
            for f, hint in _declarations()
        ]
        problems = [p.message() for p in found if p is not None]
        if not problems:  # the rules relating two settings, on values of the right kinds
            problems = self._relation_problems()
        if problems:  # each problem starts with its setting's name
            raise SettingError(
                "invalid training config: " + "; ".join(problems),
                setting=problems[0].split(" ", 1)[0],
            )

    def _relation_problems(self) -> list[str]:
        """What is wrong with one setting given another (each problem starts with its name)."""
        problems = []
        if self.early_stopping is not None and self.val_fraction <= 0:
            problems.append(
                "early_stopping needs a validation split (val_fraction > 0): stopping on the "
                "test loss would choose the model on the test split"
            )
        if self.dataset.startswith("folder:") and self.val_fraction <= 0:
            problems.append(
                "val_fraction must be > 0 for a picture folder (dataset folder:PATH): it has "
                "no test split, so best.pt and the report follow its validation split "
                "(e.g. 0.2)"
            )
        if self.freeze != "none" and not self.pretrained:
            problems.append("freeze needs pretrained weights (a random backbone cannot be frozen)")
        if self.weights is not None and not self.pretrained:
            problems.append("weights is the ImageNet weights file of pretrained, which is off")
        kinds = [k.strip() for k in self.outliers.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in OUTLIER_KINDS]
        if self.outlier_exposure > 0 and (unknown or not kinds):
            problems.append(
                f"outliers must name kinds from {', '.join(OUTLIER_KINDS)}, got {self.outliers!r}"
            )
        if self.outlier_exposure > 0 and self.dataset in kinds:
            problems.append(f"outliers include the training dataset {self.dataset}")
        if self.style_digits > 0 and self.dataset != "mnist":
            problems.append(f"style_digits draws digits for mnist, not {self.dataset}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        """All settings as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from :meth:`to_dict` output.

        Raises:
            SettingError: unknown keys, or an invalid setting.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SettingError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**values)

    def math_differences(self, other: TrainConfig) -> list[str]:
        """Settings that differ from ``other`` and would change the computed weights.

        Which settings count is declared beside each field (``math`` in its
        :func:`setting` metadata; see :func:`changes_math`): device, worker
        count, evaluation batch size, ``max_steps`` and ``deterministic`` do
        not; ``epochs`` counts only when the schedule depends on the total
        number of steps (``cosine``, ``onecycle``).
        """
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{k}: {theirs[k]!r} -> {mine[k]!r}"
            for k in mine
            if mine[k] != theirs.get(k) and changes_math(k, self)
        ]

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


@functools.cache
def _declarations() -> list[tuple[dataclasses.Field[Any], Any]]:
    """Each :class:`TrainConfig` field with its type annotation (resolved once)."""
    hints = typing.get_type_hints(TrainConfig)
    return [(f, hints[f.name]) for f in dataclasses.fields(TrainConfig)]


check_settings(TrainConfig)
_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(TrainConfig)}
