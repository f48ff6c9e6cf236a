"""Weak supervision: labelling functions vote on rows, a label model turns the votes into probabilistic labels.

A labelling function is a plain Python function of one row (a dict) that returns one of the label
set's classes, or ``None`` to abstain. :func:`apply_functions` builds the vote matrix (rows x
functions, ``-1`` for an abstention), :func:`function_stats` reports each function's coverage,
overlaps and conflicts (and accuracy where gold labels are known), and :class:`LabelModel` learns how
far to trust each function without any gold labels.

The label model is Dawid and Skene's (1979): each function has its own confusion matrix (how it votes
given the true class), fitted by expectation-maximisation from the votes alone and started from the
majority vote, which keeps the classes from being swapped. Snorkel's ``LabelModel`` fits the same
kind of model by matrix completion, but it brings torch, tensorboard and an unmaintained release line
with it; this one is a few NumPy operations per iteration and is tested against votes drawn from a
known generative model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from forgeml.errors import ValidationError

ABSTAIN = -1


@dataclass(frozen=True)
class LabelingFunction:
    """A named heuristic: a function of one row returning a class or None (abstain)."""

    name: str
    function: Callable[[Mapping[str, Any]], Any]

    def __call__(self, row: Mapping[str, Any]) -> Any:
        """Vote on one row."""
        return self.function(row)


def labeling_function(name: str | None = None) -> Callable[[Callable[..., Any]], LabelingFunction]:
    """Decorate a row -> class-or-None function as a labelling function (named after the function by default)."""

    def wrap(fn: Callable[..., Any]) -> LabelingFunction:
        return LabelingFunction(name or fn.__name__, fn)

    return wrap


def _as_functions(functions: Sequence[Any]) -> list[LabelingFunction]:
    out = [f if isinstance(f, LabelingFunction) else LabelingFunction(getattr(f, "__name__", repr(f)), f)
           for f in functions]
    names = [f.name for f in out]
    if not out:
        raise ValidationError("give at least one labelling function")
    if len(set(names)) != len(names):
        raise ValidationError(f"labelling function names must differ: {names}")
    return out


def apply_functions(functions: Sequence[Any], rows: Any, classes: Sequence[str]) -> Any:
    """Return the vote matrix (rows x functions, class index or -1) of functions applied to each row."""
    import numpy as np

    fns = _as_functions(functions)
    index = {str(c): i for i, c in enumerate(classes)}
    if hasattr(rows, "to_pylist"):
        rows = rows.to_pylist()
    elif hasattr(rows, "to_dict"):
        rows = rows.to_dict(orient="records")
    votes = np.full((len(rows), len(fns)), ABSTAIN, dtype=np.int64)
    for j, fn in enumerate(fns):
        for i, row in enumerate(rows):
            try:
                vote = fn(row)
            except Exception as e:  # a heuristic's bug must name the function and the row, not crash anonymously
                raise ValidationError(f"labelling function {fn.name!r} failed on row {i}: {type(e).__name__}: {e}") from e
            if vote is None:
                continue
            if str(vote) not in index:
                raise ValidationError(f"labelling function {fn.name!r} returned {vote!r} on row {i}; "
                                      f"return one of {list(classes)} or None to abstain")
            votes[i, j] = index[str(vote)]
    return votes


def function_stats(votes: Any, names: Sequence[str], gold: Any = None) -> list[dict[str, Any]]:
    """Per function: coverage, overlaps and conflicts with the others, and accuracy on rows with a gold class."""
    import numpy as np

    votes = np.asarray(votes)
    voted = votes != ABSTAIN
    n_voting = voted.sum(axis=1)
    out = []
    for j, name in enumerate(names):
        mine = voted[:, j]
        others = n_voting - mine
        disagree = np.zeros(len(votes), dtype=bool)
        for k in range(votes.shape[1]):
            if k != j:
                disagree |= voted[:, k] & (votes[:, k] != votes[:, j])
        entry: dict[str, Any] = {
            "function": name,
            "coverage": float(mine.mean()) if len(votes) else 0.0,
            "overlaps": float((mine & (others > 0)).mean()) if len(votes) else 0.0,
            "conflicts": float((mine & disagree).mean()) if len(votes) else 0.0,
        }
        if gold is not None:
            gold_arr = np.asarray(gold)
            known = mine & (gold_arr != ABSTAIN)
            entry["accuracy"] = float((votes[known, j] == gold_arr[known]).mean()) if known.any() else None
            entry["gold_votes"] = int(known.sum())
        out.append(entry)
    return out


def majority_proba(votes: Any, n_classes: int) -> Any:
    """Return each row's share of votes per class (uniform where every function abstained)."""
    import numpy as np

    votes = np.asarray(votes)
    counts = np.zeros((len(votes), n_classes))
    for j in range(votes.shape[1]):
        voted = votes[:, j] != ABSTAIN
        np.add.at(counts, (np.nonzero(voted)[0], votes[voted, j]), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), 1.0 / n_classes)


class LabelModel:
    """Dawid–Skene label model: per-function confusion matrices and class priors fitted by EM from votes alone."""

    def __init__(self, n_classes: int, max_iter: int = 200, tol: float = 1e-6, smoothing: float = 0.01):
        if n_classes < 2:
            raise ValidationError(f"a label model needs at least two classes, got {n_classes}")
        self.n_classes = n_classes
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.priors_: Any = None
        self.confusion_: Any = None
        self.n_iter_ = 0

    def _check(self, votes: Any) -> Any:
        import numpy as np

        votes = np.asarray(votes)
        if votes.ndim != 2 or votes.shape[1] == 0:
            raise ValidationError(f"votes must be a rows x functions matrix, got shape {votes.shape}")
        if votes.size and (votes.min() < ABSTAIN or votes.max() >= self.n_classes):
            raise ValidationError(f"votes must be class indices 0..{self.n_classes - 1} or -1 (abstain)")
        return votes.astype(np.int64)

    def _columns(self, votes: Any) -> list[Any]:
        """Each function's votes with an abstention as class index ``n_classes`` (an extra, ignored column)."""
        import numpy as np

        return [np.where(votes[:, j] == ABSTAIN, self.n_classes, votes[:, j]) for j in range(votes.shape[1])]

    def _posterior(self, columns: list[Any]) -> Any:
        import numpy as np

        log_t = np.tile(np.log(self.priors_), (len(columns[0]), 1))
        for vote, confusion in zip(columns, self.confusion_):
            # log P(vote | true class) for every candidate class, gathered per row; an abstention adds 0.
            # Gathers and bincounts keep each iteration linear in rows without large BLAS calls.
            table = np.hstack([np.log(confusion), np.zeros((self.n_classes, 1))])
            log_t += table[:, vote].T
        log_t -= log_t.max(axis=1, keepdims=True)
        t = np.exp(log_t)
        return t / t.sum(axis=1, keepdims=True)

    def fit(self, votes: Any) -> LabelModel:
        """Fit priors and confusion matrices to a vote matrix; return self."""
        import numpy as np

        votes = self._check(votes)
        k = self.n_classes
        t = majority_proba(votes, k)
        columns = self._columns(votes)
        previous = None
        for iteration in range(1, self.max_iter + 1):
            self.priors_ = (t.sum(axis=0) + self.smoothing) / (len(votes) + k * self.smoothing)
            # confusion[j][true, vote] = P(function j votes `vote` | true class, j voted)
            confusion = []
            for vote in columns:
                counts = np.stack([np.bincount(vote, weights=t[:, c], minlength=k + 1)[:k] for c in range(k)])
                confusion.append((counts + self.smoothing) / (counts.sum(axis=1, keepdims=True) + k * self.smoothing))
            self.confusion_ = np.stack(confusion)
            t = self._posterior(columns)
            self.n_iter_ = iteration
            if previous is not None and np.abs(t - previous).max() < self.tol:
                break
            previous = t
        return self

    def predict_proba(self, votes: Any) -> Any:
        """Return P(class | votes) per row."""
        if self.confusion_ is None:
            raise ValidationError("fit the label model before asking it for probabilities")
        votes = self._check(votes)
        if votes.shape[1] != len(self.confusion_):
            raise ValidationError(f"the model was fitted on {len(self.confusion_)} functions, got {votes.shape[1]}")
        return self._posterior(self._columns(votes))

    @property
    def accuracies_(self) -> Any:
        """Each function's estimated accuracy when it votes: sum over classes of prior x P(right vote | class)."""
        import numpy as np

        return np.array([(self.priors_ * np.diag(c)).sum() for c in self.confusion_])


def weak_label(label_set: str, functions: Sequence[Any], dataset: str | None = None, *, model: str = "dawid_skene",
               keep_votes: bool = True, workspace: Any = None) -> dict[str, Any]:
    """Apply labelling functions to a dataset version, combine their votes, and record the labels in the label set.

    Rows where every function abstains get no label. Each row's label-model label is recorded with its
    probability as confidence; the functions' own votes too when ``keep_votes``. Returns the functions'
    statistics, the fitted accuracies and the number of labels written.
    """
    import numpy as np

    from forgeml.datasets.versions import get_dataset_version, read_dataset
    from forgeml.labeling import persistence as db
    from forgeml.labeling.labelsets import get_label_set, workspace_or_current

    if model not in ("dawid_skene", "majority"):
        raise ValidationError(f"unknown label model {model!r}; choose dawid_skene or majority")
    ws = workspace_or_current(workspace)
    ls = get_label_set(label_set, workspace=ws)
    dv = get_dataset_version(dataset or ls.dataset, workspace=ws)
    if dv.name != ls.dataset:
        raise ValidationError(f"label set {ls.name!r} labels {ls.dataset}, not {dv.ref}")
    table = read_dataset(dv, workspace=ws)
    fns = _as_functions(functions)
    votes = apply_functions(fns, table, ls.classes)
    keys = [str(k) for k in table[ls.key].to_pylist()]
    gold_index = {c: i for i, c in enumerate(ls.classes)}
    gold_map = {r[0]: r[1] for r in db.records(ws, ls.name, ["gold"])}
    gold = np.array([gold_index[gold_map[k]] if k in gold_map else ABSTAIN for k in keys])
    stats = function_stats(votes, [f.name for f in fns], gold if gold_map else None)
    if model == "majority":
        proba, accuracies = majority_proba(votes, len(ls.classes)), None
    else:
        fitted = LabelModel(len(ls.classes)).fit(votes)
        proba, accuracies = fitted.predict_proba(votes), fitted.accuracies_.tolist()
    covered = (votes != ABSTAIN).any(axis=1)
    now = time.time()
    source = f"{model}({','.join(f.name for f in fns)})"
    rows = [(ls.name, keys[i], ls.classes[int(proba[i].argmax())], "label_model", source,
             float(proba[i].max()), now) for i in np.nonzero(covered)[0]]
    if keep_votes:
        for j, fn in enumerate(fns):
            rows.extend((ls.name, keys[i], ls.classes[int(votes[i, j])], "function", fn.name, None, now)
                        for i in np.nonzero(votes[:, j] != ABSTAIN)[0])
    written = db.upsert_records(ws, rows)
    return {"label_set": ls.name, "dataset": dv.ref, "model": model, "rows": len(keys),
            "labelled": int(covered.sum()), "records": written, "functions": stats,
            "accuracies": dict(zip([f.name for f in fns], accuracies)) if accuracies else None}


def load_functions(path: str) -> list[LabelingFunction]:
    """Import a Python file and return the labelling functions defined in it (decorated with labeling_function)."""
    import importlib.util
    from pathlib import Path

    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise ValidationError(f"labelling functions: {path!r} is not a Python file")
    spec = importlib.util.spec_from_file_location(f"forgeml_labeling_functions_{file.stem}", file)
    if spec is None or spec.loader is None:
        raise ValidationError(f"labelling functions: cannot import {path!r}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: say which and why in one line
        raise ValidationError(f"labelling functions: importing {path!r} failed: {type(e).__name__}: {e}") from e
    found = [v for v in vars(module).values() if isinstance(v, LabelingFunction)]
    if not found:
        raise ValidationError(f"{path!r} defines no labelling functions; decorate them with "
                              "@forgeml.labeling.weak.labeling_function()")
    return found
