"""(tag, case) on the case-tag links: a tag filter walks it newest case first and stops after one page, for a rare
tag as for a common one (the unique (errorcase_id, tag_id) index has the other order; the table is the
many-to-many's own, so a plain SQL index). bench/list_latency.py measures it."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("datasets_app", "0003_default_taxonomy")]
    operations = [
        migrations.RunSQL(
            "CREATE INDEX case_tag_link_tag_case ON datasets_app_errorcase_tags (tag_id, errorcase_id);",
            "DROP INDEX case_tag_link_tag_case;",
        ),
    ]
