"""The search language: parsing, compiling to parameterized SQL, malformed queries and injection attempts."""

from __future__ import annotations

import pytest

import forgeml
from forgeml.errors import NotFoundError, QuerySyntaxError
from forgeml.tracking import create_run, finish_run, get_run, search_runs
from forgeml.tracking.query import Between, Compare, Field, parse_query
from forgeml.tracking.search import compile_query

RUNS = [
    # name, experiment, lr, optimizer, val_loss, team
    ("r1", "mnist", "1e-4", "adam", 0.40, "vision"),
    ("r2", "mnist", "5e-4", "sgd", 0.30, "vision"),
    ("r3", "mnist", "0.001", "adam", 0.70, "nlp"),
    ("r4", "cifar", "0.01", "adam", 0.20, "vision"),
    ("r5", "cifar", "9e-4", "rmsprop", 0.45, None),
    ("r6", "cifar", "auto", "adam", None, "nlp"),
]


@pytest.fixture
def runs(tracked):
    ids = {}
    for name, experiment, lr, opt, val, team in RUNS:
        run = create_run(name=name, experiment=experiment, params={"lr": lr, "optimizer": opt, "epochs": 10},
                         tags={"team": team} if team else {})
        if val is not None:
            with forgeml.start_run(run_id=run.id) as active:
                active.log_metric("val_loss", val)
        finish_run(run.id, "FAILED" if name == "r3" else "FINISHED")
        ids[name] = run.id
    return ids


def names(query: str, **kwargs) -> list[str]:
    return search_runs(query, **kwargs)["name"].tolist()


class TestGoodQueries:
    def test_the_issue_example(self, runs):
        query = "params.lr between 1e-4 and 1e-3 and metrics.val_loss < 0.5 order by metrics.val_loss"
        assert names(query) == ["r2", "r1", "r5"]

    def test_params_compare_numerically_when_both_sides_are_numbers(self, runs):
        # as text "0.01" < "1e-4"; as numbers 0.01 is the largest
        assert names("params.lr > 0.005") == ["r4"]
        assert names("params.lr = 0.001") == ["r3"]
        assert names("params.lr = '0.001'") == ["r3"]
        assert names("params.lr = 'auto'") == ["r6"]
        assert names("params.epochs >= 10 order by name") == ["r1", "r2", "r3", "r4", "r5", "r6"]

    def test_comparisons_and_boolean_logic(self, runs):
        assert names("params.optimizer != 'adam' order by name") == ["r2", "r5"]
        assert names("(tags.team = 'nlp' or experiment = 'cifar') and not status = 'FAILED' order by name") == \
            ["r4", "r5", "r6"]
        assert names("metrics.val_loss <= 0.3 OR metrics.val_loss >= 0.7 ORDER BY name DESC") == ["r4", "r3", "r2"]
        assert names("not (params.optimizer = 'adam') order by name") == ["r2", "r5"]

    def test_in_like_between_and_null(self, runs):
        assert names("params.optimizer in ('sgd', 'rmsprop') order by name") == ["r2", "r5"]
        assert names("params.optimizer not in ('adam') order by name") == ["r2", "r5"]
        assert names("params.lr in (0.01, 'auto') order by name") == ["r4", "r6"]
        assert names("name like 'r%' and tags.team like 'VIS%' order by name") == ["r1", "r2", "r4"]
        assert names("metrics.val_loss not between 0.3 and 0.5 order by name") == ["r3", "r4"]
        assert names("tags.team is null") == ["r5"]
        assert names("metrics.val_loss is not null and tags.team = 'nlp'") == ["r3"]

    def test_order_by_several_keys_and_limit(self, runs):
        assert names("order by experiment asc, metrics.val_loss desc limit 4") == ["r5", "r4", "r6", "r3"]
        assert names("order by params.lr desc limit 2") == ["r4", "r3"]
        assert names("", limit=2) == names("limit 2")

    def test_attributes_with_and_without_prefix(self, runs):
        assert names("attributes.status = 'failed'") == ["r3"]
        assert len(names("start_time > '2000-01-01' and duration >= 0")) == 6
        assert names("id = '" + runs["r4"] + "'") == ["r4"]

    def test_backquoted_keys_and_slash_keys(self, tracked):
        with forgeml.start_run(name="k") as run:
            forgeml.log_metrics({"val loss": 0.1, "system/gpu0/utilization": 80})
        assert names("metrics.`val loss` < 1 and metrics.system/gpu0/utilization > 50") == ["k"]
        assert get_run(run.id).metrics["val loss"] == 0.1

    def test_deleted_runs_are_hidden_until_restored(self, runs):
        forgeml.tracking.delete_runs([runs["r1"]])
        assert "r1" not in names("")
        assert "r1" in names("", include_deleted=True)
        forgeml.tracking.restore_runs([runs["r1"]])
        assert "r1" in names("")

    def test_dataframe_shape(self, runs):
        frame = search_runs("order by name limit 1")
        assert list(frame.columns[:8]) == ["run_id", "name", "experiment", "status", "start_time", "end_time",
                                           "parent_id", "job_id"]
        assert {"params.lr", "params.optimizer", "metrics.val_loss", "tags.team"} <= set(frame.columns)
        assert frame.loc[0, "params.lr"] == "1e-4"  # params keep their text
        assert str(frame["start_time"].dtype).startswith("datetime64")

    def test_the_ast(self):
        q = parse_query("params.lr BETWEEN 1e-4 AND 1e-3 and metrics.loss < .5 order by metrics.loss desc limit 3")
        first, second = q.where.items
        assert first == Between(Field("params", "lr", 1), first.low, first.high)
        assert (first.low.value, first.high.value) == (1e-4, 1e-3)
        assert isinstance(second, Compare) and second.op == "<" and second.value.value == 0.5
        assert q.order_by[0].descending and q.limit == 3


class TestMalformedQueries:
    @pytest.mark.parametrize(("query", "column", "words"), [
        ("params.lr >", 12, "expected a value"),
        ("params.lr = 1 and", 18, "expected a field"),
        ("foo = 1", 1, "unknown field 'foo'"),
        ("statu = 'FINISHED'", 1, "did you mean 'status'"),
        ("parms.lr = 1", 1, "unknown field prefix 'parms'"),
        ("status = 'FINSHED'", 10, "did you mean 'FINISHED'"),
        ("metrics.loss < 'low'", 16, "compares with numbers"),
        ("params.a = 'open", 12, "unterminated string"),
        ("(params.a = 1", 14, "')'"),
        ("params.a ! 3", 10, "unexpected character '!'"),
        ("params.a = 1 params.b = 2", 14, "expected AND, OR, ORDER BY or LIMIT"),
        ("params.a between 1 and 'x'", 24, "two numbers or two strings"),
        ("params.a in ()", 14, "expected a value"),
        ("params.a = 1 limit 0", 20, "positive whole number"),
        ("order metrics.a", 7, "expected BY"),
        ("metrics.a like 'x%'", 11, "LIKE matches text"),
        ("start_time > 'yesterday'", 14, "ISO date"),
        ("params.a = 12abc", 12, "malformed number"),
        ("params.a is 3", 13, "expected NULL"),
        ("params. = 3", 1, "missing key"),
    ])
    def test_error_points_at_the_column(self, query, column, words):
        with pytest.raises(QuerySyntaxError) as info:
            parse_query(query)
        assert info.value.column == column
        assert words in str(info.value)
        assert f"at column {column}" in str(info.value)
        caret_line = str(info.value).splitlines()[-1]
        assert caret_line.index("^") - 2 == column - 1

    def test_search_raises_the_same_error(self, tracked):
        with pytest.raises(QuerySyntaxError, match="column 12"):
            search_runs("metrics.a >> 1")


class TestInjection:
    @pytest.mark.parametrize("attempt", [
        "name = 'x'' OR 1=1 --'",
        "name = 'r1'; DROP TABLE tracking_runs; --'",
        "tags.team = \"vision\" or 1",
        "params.`lr = 1 OR 1=1; --` = 1",
        "params.optimizer in ('adam'') OR (''1''=''1')",
    ])
    def test_injection_attempts_are_values_or_syntax_errors(self, runs, attempt):
        try:
            found = names(attempt)
        except (QuerySyntaxError, NotFoundError):  # a bad query, or a key (the whole attempt) no run has
            found = None
        assert found in (None, [])
        assert len(names("")) == len(RUNS)  # the tables are intact

    def test_values_never_reach_the_sql_text(self):
        compiled = compile_query(parse_query("name = 'x; DROP TABLE t' and params.`a'b` like '%' order by tags.`c\"d`"))
        assert "DROP" not in compiled.sql and "a'b" not in compiled.sql and 'c"d' not in compiled.sql
        assert "x; DROP TABLE t" in compiled.params and "a'b" in compiled.params and 'c"d' in compiled.params

    def test_a_value_with_quotes_matches_literally(self, tracked):
        run = create_run(name="it's \"quoted\"; --")
        assert search_runs("name = 'it''s \"quoted\"; --'")["run_id"].tolist() == [run.id]


def test_a_letter_outside_the_name_alphabet_is_a_syntax_error_not_a_hang():
    from forgeml.errors import QuerySyntaxError
    from forgeml.tracking.query import parse_query

    with pytest.raises(QuerySyntaxError, match="unexpected character 'Ý'"):
        parse_query("Ý")
