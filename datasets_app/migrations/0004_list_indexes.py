"""Indexes for the list's filters on a big notebook (bench/list_latency.py; bench/RESULTS.md, "list").

- (tag, case) on the case-tag links: a tag filter walks it newest case first and stops after one page, for a rare tag
  as for a common one (the unique (errorcase_id, tag_id) index has the other order; the table is the many-to-many's
  own, so a plain SQL index).
- (created_at, id) of the live cases: a date range's ids come from the index alone.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("datasets_app", "0003_default_taxonomy")]
    operations = [
        migrations.RunSQL(
            "CREATE INDEX case_tag_link_tag_case ON datasets_app_errorcase_tags (tag_id, errorcase_id);",
            "DROP INDEX case_tag_link_tag_case;",
        ),
        migrations.AddIndex(
            model_name="errorcase",
            index=models.Index(
                condition=models.Q(("merged_into", None)),
                fields=["created_at", "id"],
                name="case_live_created",
            ),
        ),
    ]
