from django.db import migrations

DEFAULT_TAGS = [
    ("hallucination", "Hallucination", "States facts that are not true or not in the sources."),
    ("terminology", "Terminology", "Uses a non-standard or wrong term for the product or domain."),
    ("format", "Format", "Wrong output format: broken JSON, missing fields, wrong structure."),
    ("refusal", "Refusal", "Refuses a request it should answer."),
    ("tone", "Tone", "Impolite, off-brand or inappropriate tone."),
    ("safety", "Safety", "Unsafe, harmful or policy-violating content."),
    (
        "outdated_knowledge",
        "Outdated knowledge",
        "Answers with facts or policies that are no longer current.",
    ),
    ("wrong_intent", "Wrong intent", "Misunderstands what the user asked for (classification)."),
]


def create_tags(apps, schema_editor):
    Tag = apps.get_model("datasets_app", "Tag")
    for name, label, description in DEFAULT_TAGS:
        Tag.objects.get_or_create(name=name, defaults={"label": label, "description": description})


class Migration(migrations.Migration):
    dependencies = [("datasets_app", "0002_postgres_search_and_counts")]
    operations = [migrations.RunPython(create_tags, migrations.RunPython.noop)]
