"""PostgreSQL only: a generated tsvector over search_text with a GIN index, and triggers that keep
CaseStatusCount exact (statement-level, with transition tables, so a COPY of 200k rows costs one update)."""

from django.db import migrations

# search_text already holds words and CJK bigrams (datasets_app.search). A large GIN pending list lets imports add
# rows to the index in batches instead of one posting-list update per row.
SEARCH = """
ALTER TABLE datasets_app_errorcase
  ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED;
CREATE INDEX case_search_vector ON datasets_app_errorcase USING gin (search_vector)
  WITH (fastupdate = on, gin_pending_list_limit = 65536);
"""
SEARCH_UNDO = "ALTER TABLE datasets_app_errorcase DROP COLUMN search_vector;"


def _counts_function(name: str, selects: str) -> str:
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO datasets_app_casestatuscount (status, n)
    SELECT status, sum(d) FROM ({selects}) AS changed GROUP BY status HAVING sum(d) <> 0
  ON CONFLICT (status) DO UPDATE SET n = datasets_app_casestatuscount.n + EXCLUDED.n;
  RETURN NULL;
END $$;
"""


_ADDED = "SELECT status, 1 AS d FROM new_rows WHERE merged_into_id IS NULL"
_REMOVED = "SELECT status, -1 AS d FROM old_rows WHERE merged_into_id IS NULL"

COUNTS = (
    _counts_function("datasets_case_counts_ins", _ADDED)
    + _counts_function("datasets_case_counts_del", _REMOVED)
    + _counts_function("datasets_case_counts_upd", f"{_REMOVED} UNION ALL {_ADDED}")
    + """
CREATE TRIGGER case_counts_ins AFTER INSERT ON datasets_app_errorcase
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION datasets_case_counts_ins();
CREATE TRIGGER case_counts_del AFTER DELETE ON datasets_app_errorcase
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION datasets_case_counts_del();
CREATE TRIGGER case_counts_upd AFTER UPDATE ON datasets_app_errorcase
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION datasets_case_counts_upd();
"""
)
COUNTS_UNDO = """
DROP TRIGGER case_counts_ins ON datasets_app_errorcase;
DROP TRIGGER case_counts_del ON datasets_app_errorcase;
DROP TRIGGER case_counts_upd ON datasets_app_errorcase;
DROP FUNCTION datasets_case_counts_ins(); DROP FUNCTION datasets_case_counts_del();
DROP FUNCTION datasets_case_counts_upd();
"""


class PostgresOnly(migrations.RunSQL):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [("datasets_app", "0001_initial")]
    operations = [PostgresOnly(SEARCH, SEARCH_UNDO), PostgresOnly(COUNTS, COUNTS_UNDO)]
