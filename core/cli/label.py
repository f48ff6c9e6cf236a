"""`forgeml label`: label sets, annotation, active learning, weak supervision and label quality."""

from __future__ import annotations

import click

from forgeml.cli.output import emit_json, print_table
from forgeml.times import format_utc


@click.group("label")
def label_group() -> None:
    """Labels for dataset rows: from people, labelling functions, models and late outcomes."""


@label_group.command("create")
@click.argument("name")
@click.option("--dataset", required=True, help="The dataset whose rows are labelled.")
@click.option("--key", required=True, help="The column identifying a row.")
@click.option("--classes", required=True, help="The classes, comma-separated: fraud,legit.")
@click.option("--description", default="", help="Instructions shown to annotators.")
def create_cmd(name: str, dataset: str, key: str, classes: str, description: str) -> None:
    """Create label set NAME for a dataset's rows."""
    from forgeml.labeling import create_label_set

    ls = create_label_set(name, dataset, key, [c.strip() for c in classes.split(",")], description)
    click.echo(f"label set {ls.name}: {ls.dataset} by {ls.key}, classes {', '.join(ls.classes)}")


@label_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(as_json: bool) -> None:
    """List label sets with their counts of items and records."""
    from forgeml.labeling import list_label_sets

    if as_json:
        emit_json(list_label_sets())
        return
    rows = [{**r, "classes": ",".join(r["classes"]), "created_at": format_utc(r["created_at"])}
            for r in list_label_sets()]
    print_table(rows, ["name", "dataset", "key", "classes", "items", "records", "created_at"], title="label sets")


@label_group.command("show")
@click.argument("name")
def show_cmd(name: str) -> None:
    """Counts of a label set's records by source and of its labels by class."""
    from forgeml.labeling.labelsets import label_counts

    emit_json(label_counts(name))


@label_group.command("add")
@click.argument("name")
@click.argument("source")
@click.option("--source-kind", required=True, type=click.Choice(["annotator", "outcome", "gold", "model", "function"]),
              help="Where these labels come from.")
@click.option("--source-name", required=True, help="Who or what gave them: an annotator, a system, a model URI.")
@click.option("--key", help="The key column in SOURCE (default: the label set's key).")
@click.option("--label", "label_column", default="label", show_default=True, help="The label column in SOURCE.")
@click.option("--confidence", help="A confidence column in SOURCE.")
@click.option("--at", help="A column of label times (epoch seconds) in SOURCE.")
def add_cmd(name: str, source: str, source_kind: str, source_name: str, key: str | None, label_column: str,
            confidence: str | None, at: str | None) -> None:
    """Record labels from SOURCE (a file or folder), e.g. late outcomes such as chargebacks."""
    from forgeml.labeling.labelsets import add_labels_from

    n = add_labels_from(name, source, source_kind=source_kind, source_name=source_name, key=key,
                        label=label_column, confidence=confidence, at=at)
    click.echo(f"{n} labels recorded in {name} from {source_kind} {source_name}")


@label_group.command("next")
@click.argument("name")
@click.option("--model", help="The model scoring the pool, name@production or name@3 (default: the production, "
                               "else newest staging, model trained on this label set).")
@click.option("--strategy", default="margin", show_default=True, help="A query strategy: margin, entropy, ...")
@click.option("--n", "n", default=100, show_default=True, type=click.IntRange(min=0), help="How many items.")
@click.option("--dataset", help="The dataset version to choose from (default: the label set's latest).")
@click.option("--embeddings", help="A list-of-floats column for diversity-aware strategies.")
@click.option("--gold", default=0, show_default=True, type=click.IntRange(min=0),
              help="Mix this many gold items (known answers, not yet sent) into the tasks.")
@click.option("--dry-run", is_flag=True, help="Show the choice without sending anything.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def next_cmd(name: str, model: str | None, strategy: str, n: int, dataset: str | None, embeddings: str | None,
             gold: int, dry_run: bool, as_json: bool) -> None:
    """Choose the next N items of label set NAME to label, and send them to the annotation backend."""
    from forgeml.labeling.active import next_batch

    batch = next_batch(name, model, strategy_name=strategy, n=n, dataset=dataset, embeddings=embeddings,
                       send=not dry_run, gold=gold)
    if as_json:
        emit_json(batch.to_dict())
        return
    print_table(batch.to_dict()["items"], ["key", "prediction", "score"],
                title=f"{len(batch.keys)} of {batch.pool} unlabelled items by {strategy} ({batch.model})")
    if not dry_run:
        click.echo(f"sent {batch.sent} new tasks to {batch.backend} project {batch.project}")


@label_group.command("pull")
@click.argument("name")
def pull_cmd(name: str) -> None:
    """Bring the annotations made since the last pull into label set NAME."""
    from forgeml.labeling.annotate import pull

    result = pull(name)
    click.echo(f"{result['annotations']} annotations from {result['backend']} project {result['project']}"
               + (f"; skipped {len(result['skipped'])} with labels outside the classes" if result["skipped"] else ""))


@label_group.command("weak")
@click.argument("name")
@click.argument("functions", type=click.Path(dir_okay=False))
@click.option("--model", "label_model", default="dawid_skene", show_default=True,
              type=click.Choice(["dawid_skene", "majority"]), help="How votes are combined.")
@click.option("--dataset", help="The dataset version to label (default: the label set's latest).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def weak_cmd(name: str, functions: str, label_model: str, dataset: str | None, as_json: bool) -> None:
    """Label NAME's rows with the labelling functions in FUNCTIONS (a Python file) and a label model."""
    from forgeml.labeling.weak import load_functions, weak_label

    result = weak_label(name, load_functions(functions), dataset, model=label_model)
    if as_json:
        emit_json(result)
        return
    accuracies = result["accuracies"] or {}
    print_table([{**f, "estimated_accuracy": accuracies.get(f["function"])} for f in result["functions"]],
                title=f"{result['labelled']} of {result['rows']} rows of {result['dataset']} labelled")


@label_group.command("train")
@click.argument("name")
@click.option("--dataset", help="The dataset version to join (default: the label set's latest).")
@click.option("--min-confidence", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Leave out labels less certain than this.")
@click.option("--weighted", is_flag=True, help="Weigh annotators by their accuracy on gold items.")
def train_cmd(name: str, dataset: str | None, min_confidence: float, weighted: bool) -> None:
    """Register NAME's labelled rows as a training dataset version (and snapshot the labels)."""
    from forgeml.labeling import training_set

    dv = training_set(name, dataset, min_confidence=min_confidence, weighted=weighted)
    click.echo(f"{dv.ref}: {dv.num_rows} labelled rows (labels {dv.tags['labels']}, from {dv.tags['dataset']})")


@label_group.command("agreement")
@click.argument("name")
def agreement_cmd(name: str) -> None:
    """Agreement between NAME's annotators: Cohen's kappa per pair, Fleiss' kappa, Krippendorff's alpha."""
    from forgeml.labeling.quality import agreement

    emit_json(agreement(name))


@label_group.command("gold")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gold_cmd(name: str, as_json: bool) -> None:
    """Each annotator's accuracy on NAME's gold items."""
    from forgeml.labeling.quality import gold_accuracy

    if as_json:
        emit_json(gold_accuracy(name))
        return
    print_table([{"annotator": k, **v} for k, v in gold_accuracy(name).items()], title=f"gold accuracy in {name}")


@label_group.command("errors")
@click.argument("name")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def errors_cmd(name: str, limit: int, as_json: bool) -> None:
    """Labels of NAME that look wrong (confident learning, cleanlab), most suspicious first."""
    from forgeml.labeling.quality import label_errors

    found = label_errors(name)[:limit]
    if as_json:
        emit_json(found)
        return
    print_table(found, title=f"suspected label errors in {name}")


@label_group.command("lineage")
@click.argument("name")
def lineage_cmd(name: str) -> None:
    """NAME's label snapshots, the training sets built from them and the models trained on those."""
    from forgeml.labeling.labelsets import lineage

    emit_json(lineage(name))
