"""The HTML of a :class:`~mnistcnn.evaluation.report.Report`: the page and its tables."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mnistcnn._text import plural

if TYPE_CHECKING:
    from mnistcnn.evaluation import Evaluation
    from mnistcnn.evaluation.report import ConfusedPair, Report, WorstError
    from mnistcnn.evaluation.robustness import RobustnessResult

_HEADINGS = {
    "curves.png": "Training curves",
    "worst_errors.png": "Highest-loss test images",
    "worst_errors_pictures.png": "The same images as given",
    "confused_pairs.png": "Most-confused pairs",
    "per_class_accuracy.png": "Accuracy per class",
    "confusion_matrix.png": "Confusion matrix",
    "corruption_examples.png": "Corruptions (MNIST-C)",
}
_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#555}"
    ".note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px}"
)


def report_page(report: Report) -> str:
    """The report page (UTF-8 HTML); pictures are referenced by their file names."""
    ev = report.evaluation
    sections = [
        f"<h1>{_e(report.title)}</h1>",
        f"<p>{'Test split of ' if not ev.dataset.startswith('pictures') else ''}"
        f"<b>{_e(ev.dataset)}</b>: {plural(ev.num_samples, 'image')}. "
        f"Accuracy <b>{100 * ev.accuracy:.2f}%</b>, loss {ev.loss:.4f} nats "
        f"({_e(ev.precision)}). "
        f"Checkpoints: {_e(', '.join(ev.checkpoints))}. "
        f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>",
        *(f'<p class="note">{_e(note)}</p>' for note in report.notes),
        "<h2>Metrics</h2>",
        _metrics_table(ev),
    ]
    for file_name in report.figures:
        caption = report.captions.get(file_name, "")
        sections.append(f"<h2>{_e(_HEADINGS.get(file_name, file_name))}</h2>")
        sections.append(
            f'<figure><img src="{_e(file_name)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
        if file_name == "worst_errors.png":
            sections.append(_worst_table(report.worst, ev.classes))
        if file_name == "confused_pairs.png":
            sections.append(_pairs_table(report.confused, ev.classes))
        if file_name == "corruption_examples.png" and ev.corruptions is not None:
            sections.append(_corruptions_table(ev.corruptions))
    if report.history:
        sections += ["<h2>Training history</h2>", _history_table(report.history)]
    if report.member_configs:
        sections += ["<h2>Configuration</h2>", _members_config_table(report.member_configs)]
    elif report.config:
        sections += ["<h2>Configuration</h2>", _config_table(report.config)]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(report.title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}%"


def _metrics_table(ev: Evaluation) -> str:
    rows = [
        [r["class"], _pct(r["precision"]), _pct(r["recall"]), _pct(r["f1"]), r["support"]]
        for r in ev.per_class
    ]
    rows.append(["all (accuracy)", "", _pct(ev.accuracy), "", ev.num_samples])
    return _table(["class", "precision", "recall (accuracy)", "F1", "test images"], rows, "metrics")


def _worst_table(worst: Sequence[WorstError], classes: Sequence[str]) -> str:
    rows = [
        [
            w.index,
            classes[w.true],
            classes[w.predicted],
            f"{w.prob_predicted:.4f}",
            f"{w.prob_true:.4g}",
            f"{w.loss:.3f}",
        ]
        for w in worst
    ]
    header = ["test index", "true", "predicted", "p(predicted)", "p(true)", "loss (nats)"]
    return _table(header, rows, "worst")


def _pairs_table(pairs: Sequence[ConfusedPair], classes: Sequence[str]) -> str:
    rows = [[classes[p.true], classes[p.predicted], p.count, _pct(p.rate)] for p in pairs]
    return _table(["true", "predicted as", "test images", "of the true class"], rows, "pairs")


def _corruptions_table(result: RobustnessResult) -> str:
    """Accuracy and error per corruption, then the mean and the worst; the clean row first."""
    clean = result.clean_accuracy
    rows: list[list[Any]] = [["clean (no corruption)", _pct(clean), _pct(1 - clean), "", ""]]
    rows += [
        [s.name, _pct(s.accuracy), _pct(s.error), f"{s.loss:.4f}", s.sha256[:12]]
        for s in result.scores
    ]
    rows.append(
        [
            "mean of the corruptions",
            _pct(result.mean_accuracy),
            _pct(1 - result.mean_accuracy),
            "",
            "",
        ]
    )
    rows.append(
        [
            f"worst: {result.worst.name}",
            _pct(result.worst.accuracy),
            _pct(result.worst.error),
            "",
            "",
        ]
    )
    note = (
        f"<p>The first {result.num_samples:,} test images of {_e(result.dataset)}, "
        f"corrupted with seed {result.seed}; copies cached in {_e(result.cache)} "
        "(SHA-256 of each copy's .npy file, first 12 digits). See docs/robustness.md.</p>"
    )
    header = ["corruption", "accuracy", "error", "loss (nats)", "SHA-256"]
    return note + _table(header, rows, "corruptions")


def _history_table(history: Sequence[dict[str, Any]]) -> str:
    """Per-epoch rows; accuracies in percent, as in the metrics table."""
    columns = [k for k in history[0] if isinstance(history[0][k], (int, float))]
    rows = [
        [_pct(row[k]) if k.endswith("accuracy") and row.get(k) is not None else _cell(row.get(k))
         for k in columns]
        for row in history
    ]  # fmt: skip
    return _table(columns, rows, "history")


def _config_table(config: dict[str, Any]) -> str:
    rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in config.items()]
    return _table(["setting", "value"], rows, "config")


def _members_config_table(members: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One column per ensemble member; settings they share are marked so."""
    keys = list(dict.fromkeys(k for _, config in members for k in config))
    missing = object()
    rows = []
    for k in keys:
        values = [config.get(k, missing) for _, config in members]
        shown = ["-" if v is missing else json.dumps(v) if isinstance(v, (dict, list)) else v
                 for v in values]  # fmt: skip
        same = all(v == values[0] for v in values[1:])
        rows.append([k, "same" if same else "differs", *shown])
    note = (
        f"<p>The ensemble's {plural(len(members), 'member')}, one column each "
        "(in the order given); 'same' marks a setting all of them share.</p>"
    )
    header = ["setting", "members", *(f"{i}: {p}" for i, (p, _) in enumerate(members, 1))]
    return note + _table(header, rows, "config")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
