"""Benchmark of analysis accuracy on real failed-task logs: held-out split, confusion table, calibration.

    python benchmarks/bench_accuracy.py

Grades the heuristic analyzer on tests/real_corpus (dev and held-out splits, see its README) and on the hand-written
unit corpus, next to a baseline measured in the same run on the same logs: the last line that says "error" or
"exception" (what grepping the log gives an on-call engineer) with the most frequent dev category.  Prints the
per-category confusion table and accuracy by confidence band (with the expected calibration error) for the held-out
split, writes benchmarks/results/accuracy.json and, where matplotlib is installed, accuracy_heldout.png.
"""

from __future__ import annotations

import collections
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagnostics_provider.analysis.grading import (  # noqa: E402
    GradedLog,
    calibration,
    confusion,
    format_calibration,
    format_confusion,
    grade,
    load_labels,
    scores,
)
from dagnostics_provider.analysis.log_lines import iter_log_lines  # noqa: E402
from tests.real_corpus.corpus_meta import CORPUS_DIR, split_labels  # noqa: E402

UNIT_CORPUS = ROOT / "tests" / "corpus"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
PICTURE = ROOT / "benchmarks" / "results" / "accuracy_heldout.png"
_GREP = re.compile(r"(?i)error|exception")


def grep_baseline(corpus: Path, labels: list[dict], category: str) -> list[GradedLog]:
    """The last line mentioning an error or exception, and one fixed category."""
    graded = []
    for label in labels:
        with (corpus / label["file"]).open("rb") as log:
            lines = [line.text for line in iter_log_lines(iter(lambda: log.read(1 << 16), b""))]
        last = next((text for text in reversed(lines) if _GREP.search(text)), None)
        graded.append(GradedLog(label=label, root_cause=last, category=category, confidence=0.5))
    return graded


def summary(graded: list[GradedLog]) -> dict:
    result = scores(graded)
    return {
        "logs": result.logs,
        "root_cause_top1": round(result.root_cause_accuracy, 4),
        "category": round(result.category_accuracy, 4),
        "both_right": round(result.correct, 4),
    }


def picture(table: dict[str, dict[str, int]], bands: list, path: Path) -> bool:
    """Confusion matrix and accuracy by confidence band, side by side; False where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(table)
    matrix = [[table[e][p] for p in names] for e in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1.3, 1]})
    left.imshow(matrix, cmap="Blues")
    left.set_xticks(range(len(names)), names, rotation=40, ha="right")
    left.set_yticks(range(len(names)), names)
    left.set_xlabel("predicted")
    left.set_ylabel("labelled")
    left.set_title("Held-out real logs: category confusion")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                left.text(j, i, str(count), ha="center", va="center", color="black" if count < 8 else "white")
    shown = [b for b in bands if b.logs]
    right.bar(
        [f"{b.low:.2f}-{b.high:.2f}\n({b.logs} logs)" for b in shown], [b.accuracy for b in shown], color="#4a78c2"
    )
    right.plot(range(len(shown)), [b.mean_confidence for b in shown], "o--", color="#d9822b", label="mean confidence")
    right.set_ylim(0, 1)
    right.set_ylabel("share right (root cause and category)")
    right.set_title("Accuracy by confidence band")
    right.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    labels = load_labels(CORPUS_DIR)
    dev, heldout = split_labels(labels, "dev"), split_labels(labels, "heldout")
    majority = collections.Counter(e["category"] for e in dev).most_common(1)[0][0]

    started = time.perf_counter()
    graded = {"dev": grade(CORPUS_DIR, dev), "heldout": grade(CORPUS_DIR, heldout), "unit": grade(UNIT_CORPUS)}
    seconds = time.perf_counter() - started
    baseline = {
        "dev": grep_baseline(CORPUS_DIR, dev, majority),
        "heldout": grep_baseline(CORPUS_DIR, heldout, majority),
    }
    table = confusion(graded["heldout"])
    bands, ece = calibration(graded["heldout"])
    results = {
        "heuristic": {name: summary(g) for name, g in graded.items()},
        "grep_baseline": {name: summary(g) for name, g in baseline.items()},
        "baseline_category": majority,
        "heldout_confusion": table,
        "heldout_confidence_bands": [b.__dict__ for b in bands],
        "heldout_ece": round(ece, 4),
        "ms_per_log": round(seconds / sum(len(g) for g in graded.values()) * 1000, 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print(f"{'':34}{'root cause':>12}{'category':>10}{'both':>8}{'logs':>6}")
    for name in ("heldout", "dev", "unit"):
        for who, source in (("heuristic", graded), ("grep baseline", baseline)):
            if name in source:
                s = summary(source[name])
                row = f"{name} {who}"
                print(
                    f"{row:34}{s['root_cause_top1']:>12.3f}{s['category']:>10.3f}{s['both_right']:>8.3f}{s['logs']:>6}"
                )
    print(f"(baseline category: {majority}; heuristic {results['ms_per_log']} ms per log)\n")
    print("held-out confusion (rows: labelled, columns: predicted)")
    print(format_confusion(table) + "\n")
    print("held-out accuracy by confidence band")
    print(format_calibration(bands, ece))
    if picture(table, bands, PICTURE):
        print(f"\npicture: {PICTURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
