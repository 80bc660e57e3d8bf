"""SQL requests are refused before running when they reach anything but the project's own view tables."""

from __future__ import annotations

import pytest

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
