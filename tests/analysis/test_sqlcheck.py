# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""SQL requests are refused before running when they reach anything but the project's own view tables."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hygie.analysis.rowlevel import partitions_people
from hygie.analysis.sqlcheck import SQLRefused, check_sql

TABLES = ["IR_BEN_R", "ER_PRS_F"]

REFUSED = {
    "reads a file": "SELECT * FROM read_parquet('/etc/hygie/warehouse/ER_PRS_F.parquet')",
    "reads a CSV by name": "SELECT * FROM '/tmp/people.csv'",
    "reads a file in a subquery": "SELECT n FROM (SELECT count(*) AS n FROM read_csv_auto('x.csv'))",
    "globs files": "SELECT * FROM glob('/work/*')",
    "attaches a database": "ATTACH '/tmp/other.duckdb' AS other",
    "reaches another project": "SELECT * FROM project_2.ER_PRS_F",
    "reaches another catalog": "SELECT count(*) FROM other.main.IR_BEN_R",
    "reaches the platform's record keys": "SELECT * FROM _hygie_rkeys",
    "changes a setting": "SET enable_external_access = true",
    "resets a setting": "RESET lock_configuration",
    "reads a setting": "SELECT current_setting('memory_limit')",
    "pragma": "PRAGMA database_list",
    "installs an extension": "INSTALL httpfs",
    "loads an extension": "LOAD httpfs",
    "copies out": "COPY (SELECT * FROM ER_PRS_F) TO '/tmp/out.csv'",
    "exports": "EXPORT DATABASE '/tmp/out'",
    "creates a table": "CREATE TABLE t AS SELECT * FROM ER_PRS_F",
    "two statements": "SELECT 1; SELECT * FROM read_parquet('x')",
    "the catalog": "SELECT * FROM duckdb_tables()",
    "the environment": "SELECT getenv('HYGIE_KEY_PASSPHRASE')",
    "error() leaks a value": "SELECT error(BEN_NIR_PSA) FROM IR_BEN_R",
    "a table function": "SELECT * FROM query_table('ER_PRS_F')",
    "summarize": "SUMMARIZE ER_PRS_F",
}


@pytest.mark.parametrize("sql", REFUSED.values(), ids=REFUSED.keys())
def test_refused_before_running_with_a_reason(sql: str) -> None:
    with pytest.raises(SQLRefused) as caught:
        check_sql(sql, TABLES)
    assert len(caught.value.message) > 20


def test_a_select_over_the_view_passes_and_is_regenerated() -> None:
    q = check_sql(
        "WITH c AS (SELECT BEN_NIR_PSA, sum(PRS_PAI_MNT) AS s FROM er_prs_f GROUP BY 1) "
        "SELECT b.BEN_SEX_COD, count(*) AS n, sum(c.s) FROM c JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1",
        TABLES,
    )
    assert q.tables == {"ER_PRS_F", "IR_BEN_R"}
    assert "read_" not in q.ast.sql(dialect="duckdb").lower()


def test_the_reason_names_the_tables_one_may_read() -> None:
    with pytest.raises(SQLRefused, match="ER_PRS_F, IR_BEN_R"):
        check_sql("SELECT * FROM ER_PHA_F", TABLES)


# -- Row-level outputs, whatever their disguise (issue 13, item 5) --------------------------------------------------
#
# Each disguise is checked twice: DuckDB runs it on a tiny copy of the view's tables (so it is a real query that
# would have handed the checkers one row per person, a key in disguise), and check_sql refuses it before running.

VIEW = {
    "IR_BEN_R": ["BEN_NIR_PSA", "BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT"],
    "ER_PRS_F": ["CLE_DCI_JNT", "BEN_NIR_PSA", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT"],
}


@pytest.fixture(scope="module")
def tiny_view() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.sql("CREATE TABLE IR_BEN_R AS SELECT 'P' || i AS BEN_NIR_PSA, 1 + i % 2 AS BEN_SEX_COD, "
            "1940 + i AS BEN_NAI_ANN, '0' || (10 + i % 3) AS BEN_RES_DPT FROM range(6) t(i)")  # fmt: skip
    con.sql("CREATE TABLE ER_PRS_F AS SELECT 'C' || i AS CLE_DCI_JNT, 'P' || (i % 6) AS BEN_NIR_PSA, "
            "DATE '2024-01-01' + CAST(i * 13 AS INTEGER) AS EXE_SOI_DTD, 1000 + i % 4 AS PRS_NAT_REF, "
            "10.5 * i AS PRS_PAI_MNT FROM range(30) t(i)")  # fmt: skip
    yield con
    con.close()


WRAPPERS = [
    "md5({})", "sha256({})", "CAST(hash({}) AS VARCHAR)", "reverse({})", "upper({})", "lower({})",
    "CAST(CAST({} AS BLOB) AS VARCHAR)", "{} || ''", "concat('x', {})", "substr({}, 2, 6)", "lpad({}, 24, '0')",
    "replace({}, 'P', 'Q')", "left({}, 8)", "CASE WHEN {} > 'P3' THEN 'a' ELSE 'b' END",
    "CAST(length({}) * 7 AS VARCHAR)", "{}::VARCHAR",
]  # fmt: skip
"""Ways to disguise a key, each a VARCHAR of a VARCHAR so that they nest."""
CONTEXTS = [
    "SELECT {e} AS v, count(*) AS n FROM ER_PRS_F f GROUP BY 1",
    "WITH c AS (SELECT {e} AS v FROM ER_PRS_F f) SELECT v AS out, count(*) AS n FROM c GROUP BY 1",
    "SELECT t.v FROM (SELECT {e} AS v, sum(PRS_PAI_MNT) AS s FROM ER_PRS_F f GROUP BY 1) t",
    "SELECT sum(PRS_PAI_MNT) AS total, count(*) AS n FROM ER_PRS_F f GROUP BY {e}",
    "SELECT list({e}) AS l FROM ER_PRS_F f",
    "SELECT PRS_NAT_REF, string_agg({e}, ',') AS s FROM ER_PRS_F f GROUP BY PRS_NAT_REF",
    "SELECT PRS_NAT_REF, arg_max(PRS_PAI_MNT, {e}) AS a FROM ER_PRS_F f GROUP BY PRS_NAT_REF",
    "SELECT PRS_NAT_REF, max({e}) AS m, first({e}) AS f1, any_value({e}) AS a FROM ER_PRS_F f GROUP BY 1",
    "SELECT DISTINCT {e} AS v FROM ER_PRS_F f",
    "SELECT v, count(*) AS n FROM (SELECT {e} AS v FROM ER_PRS_F f UNION ALL SELECT 'x') u GROUP BY v",
    "SELECT DISTINCT sum(PRS_PAI_MNT) OVER (PARTITION BY {e}) AS total FROM ER_PRS_F f",
    "SELECT b.BEN_SEX_COD, x.v, count(*) AS n FROM IR_BEN_R b JOIN (SELECT BEN_NIR_PSA, {e} AS v FROM ER_PRS_F f) x "
    "USING (BEN_NIR_PSA) GROUP BY ALL",
    "SELECT * FROM (SELECT {e} AS v, count(*) AS n FROM ER_PRS_F f GROUP BY 1)",
    "SELECT v, count(*) AS n FROM ER_PRS_F f, LATERAL (SELECT {e} AS v) l GROUP BY 1",
]


@st.composite
def disguises(draw: st.DrawFn) -> str:
    key = draw(st.sampled_from(["f.BEN_NIR_PSA", "BEN_NIR_PSA", "f.CLE_DCI_JNT"]))
    expression = key
    for wrapper in draw(st.lists(st.sampled_from(WRAPPERS), max_size=4)):
        expression = wrapper.format(expression)
    return draw(st.sampled_from(CONTEXTS)).format(e=expression)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sql=disguises())
def test_a_key_in_disguise_is_refused_before_running(tiny_view: duckdb.DuckDBPyConnection, sql: str) -> None:
    tiny_view.sql(sql).fetchall()  # a real query: before, it went to the checkers
    with pytest.raises(SQLRefused, match=r"BEN_NIR_PSA|CLE_DCI_JNT") as caught:
        check_sql(sql, VIEW)
    assert "'P" not in caught.value.message  # the message names the column, never a value


ROW_LEVEL = {
    "a window per person": "SELECT row_number() OVER (PARTITION BY BEN_NIR_PSA) AS r, PRS_PAI_MNT FROM ER_PRS_F",
    "one row per person": "SELECT sum(PRS_PAI_MNT) AS total FROM ER_PRS_F GROUP BY BEN_NIR_PSA",
    "one row per claim": "SELECT sum(PRS_PAI_MNT) AS total FROM ER_PRS_F GROUP BY CLE_DCI_JNT",
    "one row per person by DISTINCT ON": "SELECT DISTINCT ON (BEN_NIR_PSA) PRS_PAI_MNT FROM ER_PRS_F",
    "a keyed CTE read row by row": "WITH c AS (SELECT BEN_NIR_PSA, sum(PRS_PAI_MNT) AS s FROM ER_PRS_F GROUP BY 1) "
    "SELECT s FROM c",
    "an extract without the key": "SELECT * EXCLUDE (BEN_NIR_PSA) FROM IR_BEN_R",
    "the largest line": "SELECT PRS_PAI_MNT FROM ER_PRS_F ORDER BY 1 DESC LIMIT 1",
    "one row per person by QUALIFY": "SELECT BEN_SEX_COD, PRS_PAI_MNT FROM ER_PRS_F JOIN IR_BEN_R USING (BEN_NIR_PSA) "
    "QUALIFY row_number() OVER (PARTITION BY BEN_NIR_PSA) = 1",
    "a star": "SELECT * FROM IR_BEN_R",
    "a whole row as JSON": "SELECT to_json(t) AS j, count(*) AS n FROM IR_BEN_R t GROUP BY 1",
    "struct_pack(*)": "SELECT struct_pack(*) AS j, count(*) AS n FROM IR_BEN_R GROUP BY 1",
    "COLUMNS()": "SELECT COLUMNS('BEN_.*'), count(*) AS n FROM IR_BEN_R GROUP BY ALL",
    "UNNEST": "SELECT x.k, count(*) AS n FROM IR_BEN_R, unnest([BEN_NIR_PSA]) AS x(k) GROUP BY 1",
    "renamed by a table alias": "SELECT k, count(*) AS n FROM IR_BEN_R t(k) GROUP BY 1",
    "renamed by a derived table's alias": "SELECT b, count(*) AS n FROM (SELECT BEN_NIR_PSA AS a FROM IR_BEN_R) t(b) "
    "GROUP BY b",
    "a struct field": "SELECT s.a, count(*) AS n FROM (SELECT {'a': BEN_NIR_PSA} AS s FROM IR_BEN_R) GROUP BY 1",
    "a lateral alias": "SELECT md5(BEN_NIR_PSA) AS a, a || 'x' AS b FROM IR_BEN_R GROUP BY ALL",
    "a scalar subquery picking a row": "SELECT (SELECT BEN_SEX_COD FROM IR_BEN_R LIMIT 1) AS s",
    "a rank in key order": "SELECT r.rnk, count(*) AS n FROM ER_PRS_F JOIN (SELECT BEN_NIR_PSA, row_number() OVER "
    "(ORDER BY BEN_NIR_PSA) AS rnk FROM IR_BEN_R) r USING (BEN_NIR_PSA) GROUP BY r.rnk",
    "a row number as key": "SELECT id, sum(PRS_PAI_MNT) AS s FROM (SELECT row_number() OVER () AS id, PRS_PAI_MNT "
    "FROM ER_PRS_F) GROUP BY id",
    "a random key": "SELECT r, sum(PRS_PAI_MNT) AS s FROM (SELECT random() AS r, PRS_PAI_MNT FROM ER_PRS_F) GROUP BY r",
    "a recursive CTE moving the key": "WITH RECURSIVE r(a, b) AS (SELECT '1', (SELECT min(BEN_NIR_PSA) FROM IR_BEN_R) "
    "UNION ALL SELECT b, a FROM r WHERE a < '3') SELECT a, count(*) AS n FROM r GROUP BY a",
    "a key by UNION": "SELECT BEN_NIR_PSA FROM IR_BEN_R UNION SELECT 'a'",
    "rows packed in a list": "SELECT list(BEN_NAI_ANN) AS born, list(BEN_SEX_COD) AS sex, list(BEN_RES_DPT) AS dpt "
    "FROM IR_BEN_R",
    "rows packed in a string": "SELECT BEN_SEX_COD, string_agg(CAST(PRS_PAI_MNT AS VARCHAR), ',') AS paid "
    "FROM ER_PRS_F JOIN IR_BEN_R USING (BEN_NIR_PSA) GROUP BY 1",
    "values packed in a histogram": "SELECT histogram(BEN_NAI_ANN || '-' || BEN_SEX_COD || '-' || BEN_RES_DPT) AS h "
    "FROM IR_BEN_R",
    "a packed list unnested": "SELECT unnest(l) AS born FROM (SELECT list(BEN_NAI_ANN) AS l FROM IR_BEN_R)",
    # DISTINCT, set operations and a GROUP BY alone summarise nothing (the security review of issue 13): one
    # person's care lines, date and amount, made distinct
    "lines made distinct by UNION": "SELECT f.EXE_SOI_DTD, f.PRS_PAI_MNT FROM ER_PRS_F f JOIN IR_BEN_R b "
    "USING (BEN_NIR_PSA) WHERE b.BEN_NAI_ANN = 1941 UNION SELECT NULL, NULL",
    "lines made distinct by INTERSECT": "SELECT EXE_SOI_DTD, PRS_PAI_MNT FROM ER_PRS_F WHERE BEN_NIR_PSA = 'P1' "
    "INTERSECT SELECT EXE_SOI_DTD, PRS_PAI_MNT FROM ER_PRS_F",
    "lines made distinct by EXCEPT": "SELECT EXE_SOI_DTD, PRS_PAI_MNT FROM ER_PRS_F EXCEPT SELECT NULL, NULL",
    "an aggregate UNION lines": "SELECT PRS_NAT_REF, count(*) AS n FROM ER_PRS_F GROUP BY 1 "
    "UNION SELECT PRS_NAT_REF, PRS_PAI_MNT FROM ER_PRS_F WHERE BEN_NIR_PSA = 'P1'",
    "lines made DISTINCT": "SELECT DISTINCT EXE_SOI_DTD, PRS_PAI_MNT, PRS_NAT_REF FROM ER_PRS_F "
    "WHERE BEN_NIR_PSA = 'P1'",
    "lines grouped by ALL without an aggregate": "SELECT EXE_SOI_DTD, PRS_PAI_MNT, PRS_NAT_REF FROM ER_PRS_F "
    "WHERE BEN_NIR_PSA = 'P1' GROUP BY ALL",
    "an aggregate in HAVING only": "SELECT EXE_SOI_DTD, PRS_PAI_MNT FROM ER_PRS_F WHERE BEN_NIR_PSA = 'P1' "
    "GROUP BY ALL HAVING count(*) > 0",
    "per-person totals made DISTINCT": "SELECT DISTINCT x FROM (SELECT sum(PRS_PAI_MNT) AS x FROM ER_PRS_F "
    "GROUP BY BEN_NIR_PSA)",
    "per-person totals grouped without an aggregate": "SELECT x FROM (SELECT sum(PRS_PAI_MNT) AS x FROM ER_PRS_F "
    "GROUP BY BEN_NIR_PSA) GROUP BY x",
    "the values of a column": "SELECT DISTINCT BEN_SEX_COD FROM IR_BEN_R",
}


@pytest.mark.parametrize("sql", ROW_LEVEL.values(), ids=ROW_LEVEL.keys())
def test_row_level_shapes_are_refused_before_running(tiny_view: duckdb.DuckDBPyConnection, sql: str) -> None:
    tiny_view.sql(sql).fetchall()
    with pytest.raises(SQLRefused, match="row-level data never leaves"):
        check_sql(sql, VIEW)


HONEST = [
    "SELECT b.BEN_SEX_COD AS sex, count(DISTINCT f.BEN_NIR_PSA) AS people FROM ER_PRS_F f "
    "JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1 ORDER BY 1",
    "WITH c AS (SELECT BEN_NIR_PSA, sum(PRS_PAI_MNT) AS s FROM ER_PRS_F GROUP BY 1) "
    "SELECT b.BEN_SEX_COD, count(*) AS n, sum(c.s) AS paid FROM c JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1",
    "SELECT count(*) AS n FROM ER_PRS_F",
    "SELECT 1 AS one",
    "SELECT (SELECT count(*) FROM IR_BEN_R) AS people, (SELECT count(*) FROM ER_PRS_F) AS care",
    "SELECT n, count(*) AS people FROM (SELECT count(*) OVER (PARTITION BY BEN_NIR_PSA) AS n FROM ER_PRS_F) GROUP BY n",
    "SELECT n, count(*) AS people FROM (SELECT BEN_NIR_PSA, count(*) AS n FROM ER_PRS_F GROUP BY 1) GROUP BY n",
    "SELECT BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY CUBE (BEN_SEX_COD)",
    "SELECT list(sex ORDER BY sex) AS sexes, sum(n) AS n FROM (SELECT BEN_SEX_COD AS sex, count(*) AS n FROM IR_BEN_R "
    "GROUP BY 1)",
    "SELECT DISTINCT BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY 1",
    "SELECT BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY 1 UNION SELECT 0, count(*) FROM IR_BEN_R",
    "SELECT x, count(*) AS n FROM (SELECT DISTINCT BEN_NIR_PSA, PRS_NAT_REF AS x FROM ER_PRS_F) GROUP BY x",
    "SELECT BEN_RES_DPT, count(*) FILTER (WHERE BEN_SEX_COD = 2) AS women FROM IR_BEN_R GROUP BY 1 HAVING count(*) > 1",
    "SELECT count(*) AS n FROM IR_BEN_R b WHERE EXISTS (SELECT 1 FROM ER_PRS_F f WHERE f.BEN_NIR_PSA = b.BEN_NIR_PSA)",
    "SELECT sex, n, rank() OVER (ORDER BY n DESC) AS r FROM (SELECT BEN_SEX_COD sex, count(*) n FROM IR_BEN_R "
    "GROUP BY 1)",
    "SELECT d, count(*) AS n, avg(PRS_PAI_MNT) AS mean FROM (SELECT ntile(4) OVER (ORDER BY PRS_PAI_MNT) AS d, "
    "PRS_PAI_MNT FROM ER_PRS_F) GROUP BY d",
    "SELECT nth, count(*) AS n FROM (SELECT row_number() OVER (PARTITION BY BEN_NIR_PSA ORDER BY EXE_SOI_DTD) AS nth "
    "FROM ER_PRS_F) GROUP BY nth",
    "SELECT count(DISTINCT BEN_NIR_PSA || CLE_DCI_JNT) AS pairs, approx_count_distinct(md5(BEN_NIR_PSA)) AS people "
    "FROM ER_PRS_F",
]

GROUPS = {
    "month": "date_trunc('month', f.EXE_SOI_DTD)", "sex": "b.BEN_SEX_COD", "département": "b.BEN_RES_DPT",
    "birth decade": "b.BEN_NAI_ANN // 10 * 10", "nature": "f.PRS_NAT_REF", "year": "year(f.EXE_SOI_DTD)",
}  # fmt: skip
MEASURES = [
    "count(*) AS lines", "count(DISTINCT f.BEN_NIR_PSA) AS people", "sum(f.PRS_PAI_MNT) AS paid",
    "avg(f.PRS_PAI_MNT) AS mean", "median(f.PRS_PAI_MNT) AS median", "count(DISTINCT f.CLE_DCI_JNT) AS claims",
    "approx_count_distinct(f.BEN_NIR_PSA) AS approx_people", "sum(f.PRS_PAI_MNT) / count(DISTINCT f.BEN_NIR_PSA) AS pp",
]  # fmt: skip
SOURCES = [
    "ER_PRS_F f JOIN IR_BEN_R b USING (BEN_NIR_PSA)",
    "ER_PRS_F f JOIN IR_BEN_R b ON f.BEN_NIR_PSA = b.BEN_NIR_PSA WHERE f.BEN_NIR_PSA IN (SELECT BEN_NIR_PSA FROM "
    "IR_BEN_R WHERE BEN_SEX_COD = 2)",
    "(SELECT * FROM ER_PRS_F) f JOIN (SELECT * FROM IR_BEN_R) b USING (BEN_NIR_PSA)",
]


@st.composite
def honest_aggregates(draw: st.DrawFn) -> str:
    groups = draw(st.lists(st.sampled_from(sorted(GROUPS)), min_size=1, max_size=3, unique=True))
    measures = draw(st.lists(st.sampled_from(MEASURES), min_size=1, max_size=4, unique=True))
    dims = ", ".join(f"{GROUPS[g]} AS g{i}" for i, g in enumerate(groups))
    sql = f"SELECT {dims}, {', '.join(measures)} FROM {draw(st.sampled_from(SOURCES))} GROUP BY ALL"
    if draw(st.booleans()):
        sql = f"WITH t AS ({sql}) SELECT * FROM t ORDER BY ALL"
    return sql


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sql=honest_aggregates())
def test_honest_aggregates_pass(tiny_view: duckdb.DuckDBPyConnection, sql: str) -> None:
    tiny_view.sql(sql).fetchall()
    check_sql(sql, VIEW)


@pytest.mark.parametrize("sql", HONEST)
def test_honest_shapes_pass(tiny_view: duckdb.DuckDBPyConnection, sql: str) -> None:
    tiny_view.sql(sql).fetchall()
    check_sql(sql, VIEW)


def test_a_column_the_tracer_cannot_place_is_refused_with_its_name() -> None:
    with pytest.raises(SQLRefused, match=r"could not trace.*nope"):
        check_sql("SELECT nope, count(*) AS n FROM IR_BEN_R GROUP BY 1", VIEW)


def test_the_refusal_names_the_output_column() -> None:
    with pytest.raises(SQLRefused, match=r"output column 2 \('who'\) derives from BEN_NIR_PSA"):
        check_sql("SELECT count(*) AS n, reverse(BEN_NIR_PSA) AS who FROM IR_BEN_R GROUP BY 2", VIEW)
    with pytest.raises(SQLRefused, match=r"one row per person, claim or line \(grouped by CLE_DCI_JNT\)"):
        check_sql("SELECT sum(PRS_PAI_MNT) AS s FROM ER_PRS_F GROUP BY CLE_DCI_JNT", VIEW)
    with pytest.raises(SQLRefused, match="each of its rows is a row of ER_PRS_F"):
        check_sql("SELECT PRS_PAI_MNT FROM ER_PRS_F", ["ER_PRS_F"])  # table names alone: the contract's columns


REVIEWED = {
    "UNION": "SELECT EXE_SOI_DTD, PRS_PAI_MNT FROM ER_PRS_F WHERE BEN_NAI_ANN='1920' UNION SELECT NULL, NULL",
    "INTERSECT": "SELECT EXE_SOI_DTD, PRS_PAI_MNT FROM ER_PRS_F WHERE BEN_NAI_ANN='1920' INTERSECT "
    "SELECT EXE_SOI_DTD, PRS_PAI_MNT FROM ER_PRS_F",
    "DISTINCT": "SELECT DISTINCT EXE_SOI_DTD, PRS_PAI_MNT, PRS_NAT_REF, PSE_SPE_COD FROM ER_PRS_F "
    "WHERE BEN_NAI_ANN='1920' AND BEN_RES_DPT='75'",
    "GROUP BY ALL": "SELECT EXE_SOI_DTD, PRS_PAI_MNT, PRS_NAT_REF, PSE_SPE_COD FROM ER_PRS_F "
    "WHERE BEN_NAI_ANN='1920' GROUP BY ALL",
    "DISTINCT per person": "SELECT DISTINCT x FROM (SELECT sum(PRS_PAI_MNT) x FROM ER_PRS_F GROUP BY BEN_NIR_PSA)",
}


@pytest.mark.parametrize("sql", REVIEWED.values(), ids=REVIEWED.keys())
def test_the_security_reviews_row_level_sql_is_refused(sql: str) -> None:
    """The review's texts, as written, over the contract's columns (table names alone): before, check_sql let
    each through to run and reach the checkers (DISTINCT, set operations and GROUP BY counted as aggregation)."""
    with pytest.raises(SQLRefused, match="row-level data never leaves"):
        check_sql(sql, TABLES)


@pytest.mark.parametrize("sql", ["SELECT 'abc FROM ER_PRS_F", "SELECT 1 /* open", 'SELECT "x FROM IR_BEN_R'])
def test_sql_that_does_not_tokenize_is_refused_with_a_reason(sql: str) -> None:
    with pytest.raises(SQLRefused, match="could not be read as DuckDB"):
        check_sql(sql, TABLES)


def test_sql_nested_too_deeply_is_refused_not_a_crash() -> None:
    sql = "SELECT " + "md5(" * 300 + "BEN_NIR_PSA" + ")" * 300 + " AS x, count(*) AS n FROM IR_BEN_R GROUP BY 1"
    with pytest.raises(SQLRefused, match="nested too deeply"):
        check_sql(sql, VIEW)


PARTITIONS = {
    "SELECT BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY 1": True,
    "SELECT b.BEN_SEX_COD, b.BEN_RES_DPT, count(DISTINCT f.BEN_NIR_PSA) AS n FROM ER_PRS_F f "
    "JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY ALL": True,
    "SELECT DISTINCT BEN_NAI_ANN, BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY ALL": True,
    "SELECT * FROM (SELECT BEN_NAI_ANN // 10 AS d, count(*) AS n FROM IR_BEN_R GROUP BY 1) WHERE n > 2": True,
    "SELECT date_trunc('month', EXE_SOI_DTD) AS m, count(*) AS n FROM ER_PRS_F GROUP BY 1": False,  # one per month
    "SELECT BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY ROLLUP (BEN_SEX_COD)": False,  # and in the total
    "SELECT b.BEN_SEX_COD, PRS_NAT_REF, count(*) AS n FROM ER_PRS_F JOIN IR_BEN_R b USING (BEN_NIR_PSA) "
    "GROUP BY ALL": False,
    "SELECT count(*) AS n FROM IR_BEN_R": False,
    "SELECT BEN_SEX_COD, count(*) AS n FROM IR_BEN_R GROUP BY 1 UNION ALL SELECT 0, count(*) FROM IR_BEN_R": False,
}


@pytest.mark.parametrize(("sql", "expected"), PARTITIONS.items())
def test_outputs_whose_rows_split_the_people(sql: str, expected: bool) -> None:
    """Grouped by the beneficiaries' own columns, each person is in one row at most: more rows than people /
    threshold then means some row holds fewer than the threshold (the data check after running refuses it)."""
    assert partitions_people(check_sql(sql, VIEW).ast, VIEW) is expected
