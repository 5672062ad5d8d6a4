"""docs/img/styles-set.png: a row of the training pool, then the first 14 pictures of every
style of the held-out styles set (mnistcnn.data.styles).

Usage: ``.venv/bin/python benchmarks/plot_styles.py`` (from the project's root).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mnistcnn.data.styles import style_digits, styles_set  # noqa: E402

data = styles_set()
fig, axes = plt.subplots(len(data.names) + 1, 1, figsize=(8, 0.62 * (len(data.names) + 1)))
x, _ = style_digits(14, seed=2_000_003)
for ax, (name, mask) in zip(axes, [("training pool (seed 0)", None), *data.groups()]):
    row = x if mask is None else data.images[mask][:14]
    ax.imshow(np.concatenate(list(row.numpy()), 1), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
fig.tight_layout()
fig.savefig("docs/img/styles-set.png", dpi=80)
