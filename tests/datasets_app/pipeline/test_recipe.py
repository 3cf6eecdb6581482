"""A recipe is checked as a whole: every problem named by its dotted field path, defaults filled in."""

import pytest

from datasets_app.pipeline.recipe import Recipe, RecipeError

MINIMAL = {"task_type": "chat", "sources": {"files": [3]}}


def problems_of(data) -> dict[str, list[str]]:
    with pytest.raises(RecipeError) as caught:
        Recipe.from_dict(data)
    return caught.value.problems


def test_it_fills_every_default_so_the_stored_recipe_holds_every_setting():
    stored = Recipe.from_dict(MINIMAL).to_dict()

    assert stored["sources"] == {"cases": None, "files": [3], "parent_version": None, "replay": None}
    assert stored["steps"]["filter"] == {
        "min_tokens": 1, "max_tokens": 4096, "tokenizer": "", "drop_degenerate": True, "languages": []
    }  # fmt: skip
    assert stored["steps"]["split"] == {
        "train": 0.8, "validation": 0.1, "test": 0.1, "seed": 42, "stratify": True, "pinned_test_version": None
    }  # fmt: skip
    assert stored["steps"]["augment"]["backtranslation"]["pivot"] == "en"
    assert Recipe.from_dict(stored) == Recipe.from_dict(MINIMAL)


def test_it_reads_a_full_recipe_back_unchanged():
    full = Recipe.from_dict(MINIMAL).to_dict()
    full["sources"]["cases"] = {
        "tags": ["refund"],
        "products": ["shop"],
        "date_from": "2025-01-01",
        "date_to": "",
    }
    full["sources"]["replay"] = {"version": 7, "ratio": 0.25}
    full["steps"]["augment"]["backtranslation"] = {
        "ratio": 0.1, "endpoint": "http://127.0.0.1:9/", "model": "m", "api_key": "k", "pivot": "zh"
    }  # fmt: skip

    assert Recipe.from_dict(full).to_dict() == full


def test_it_reports_every_problem_at_once_keyed_by_field_path():
    problems = problems_of(
        {
            "task_type": "chat",
            "sources": {"files": [1]},
            "steps": {
                "split": {"train": 0.7},
                "filter": {"min_tokens": 10, "max_tokens": 5, "languages": ["fr"]},
                "dedup": {"threshold": 1.5},
                "augment": {"noise": {"ratio": 2}},
            },
        }
    )

    assert problems == {
        "steps.split.train": ["ratios must sum to 1 (got 0.9)"],
        "steps.filter.min_tokens": ["must not exceed max_tokens (5)"],
        "steps.filter.languages[0]": ["must be one of zh, en, other, got 'fr'"],
        "steps.dedup.threshold": ["must be above 0 and at most 1 (got 1.5)"],
        "steps.augment.noise.ratio": ["must be between 0 and 1 (got 2)"],
    }


def test_it_names_unknown_keys_wherever_they_are():
    problems = problems_of({**MINIMAL, "colour": "red", "steps": {"split": {"shuffle": True, "sed": 1}}})

    assert problems == {"recipe": ["unknown keys: colour"], "steps.split": ["unknown keys: sed, shuffle"]}


def test_it_names_wrong_types():
    problems = problems_of(
        {
            "task_type": 3,
            "sources": {"files": ["a.jsonl"], "cases": []},
            "steps": {"dedup": {"exact": "yes", "threshold": True}, "filter": {"max_tokens": 10.5}},
        }
    )

    assert problems == {
        "task_type": ["must be text, got a number"],
        "sources.files[0]": ["must be a whole number, got text"],
        "sources.cases": ["must be an object, got a list"],
        "steps.dedup.exact": ["must be true or false, got text"],
        "steps.dedup.threshold": ["must be a number, got true/false"],
        "steps.filter.max_tokens": ["must be a whole number, got a number"],
    }


def test_it_requires_a_known_task_type_and_at_least_one_source():
    assert problems_of({"sources": {"files": [1]}}) == {"task_type": ["is required"]}
    assert problems_of({"task_type": "poetry", "sources": {}}) == {
        "task_type": ["must be one of chat, instruction, classification, preference, got 'poetry'"],
        "sources": ["pick at least one source: cases, files or parent_version"],
    }


def test_it_checks_dates_ids_and_the_replay_ratio():
    problems = problems_of(
        {
            "task_type": "instruction",
            "sources": {
                "cases": {"date_from": "2025-02-30", "date_to": "01/03/2025"},
                "files": [0, 2, 2],
                "replay": {"version": 4, "ratio": 0},
            },
        }
    )

    assert problems == {
        "sources.cases.date_from": ["must be a date written YYYY-MM-DD, got '2025-02-30'"],
        "sources.cases.date_to": ["must be a date written YYYY-MM-DD, got '01/03/2025'"],
        "sources.files[0]": ["must be a file id (a positive number)"],
        "sources.files": ["lists a file more than once"],
        "sources.replay.ratio": ["must be above 0 and at most 1 (got 0)"],
    }


def test_it_rejects_a_date_range_that_ends_before_it_starts():
    problems = problems_of(
        {"task_type": "chat", "sources": {"cases": {"date_from": "2025-03-01", "date_to": "2025-02-01"}}}
    )

    assert problems == {"sources.cases.date_to": ["must not be before date_from"]}


def test_it_needs_an_http_endpoint_and_a_model_to_back_translate():
    problems = problems_of({**MINIMAL, "steps": {"augment": {"backtranslation": {"ratio": 0.2}}}})
    assert problems == {
        "steps.augment.backtranslation.endpoint": ["a ratio above 0 needs an endpoint URL"],
        "steps.augment.backtranslation.model": ["a ratio above 0 needs a model name"],
    }

    problems = problems_of(
        {**MINIMAL, "steps": {"augment": {"backtranslation": {"endpoint": "file:///etc"}}}}
    )
    assert problems == {
        "steps.augment.backtranslation.endpoint": ["must be an http:// or https:// URL, got 'file:///etc'"]
    }


def test_it_needs_synonyms_to_replace_words_with():
    problems = problems_of(
        {**MINIMAL, "steps": {"augment": {"synonyms": {"ratio": 0.5, "table": {"fast": []}}}}}
    )

    assert problems == {
        "steps.augment.synonyms.table": ["a ratio above 0 needs at least one word with synonyms"]
    }


def test_it_keeps_label_sets_for_classification():
    problems = problems_of({**MINIMAL, "steps": {"integrity": {"labels": ["pos", "neg"]}}})
    assert problems == {"steps.integrity.labels": ["a label set applies to classification only"]}

    recipe = Recipe.from_dict({"task_type": "classification", "sources": {"files": [1]},
                               "steps": {"integrity": {"labels": ["pos", "neg"]}}})  # fmt: skip
    assert recipe.steps.integrity.labels == ["pos", "neg"]


def test_it_needs_train_or_validation_beside_a_pinned_test_split():
    split = {"train": 0, "validation": 0, "test": 1, "pinned_test_version": 5}
    problems = problems_of({**MINIMAL, "steps": {"split": split}})

    assert problems == {
        "steps.split.train": ["with a pinned test split, train or validation needs a ratio above 0"]
    }


def test_it_accepts_ratios_that_sum_to_one_within_rounding():
    recipe = Recipe.from_dict({**MINIMAL, "steps": {"split": {"train": 0.7, "validation": 0.2, "test": 0.1}}})

    assert recipe.steps.split.train == 0.7


def test_it_hides_the_api_key_where_the_recipe_is_shown():
    recipe = Recipe.from_dict(
        {**MINIMAL, "steps": {"augment": {"backtranslation": {"api_key": "sk-secret"}}}}
    )

    assert recipe.to_dict()["steps"]["augment"]["backtranslation"]["api_key"] == "sk-secret"
    assert recipe.redacted_dict()["steps"]["augment"]["backtranslation"]["api_key"] == "***"


def test_it_says_the_recipe_must_be_an_object():
    assert problems_of(["chat"]) == {"recipe": ["must be an object, got a list"]}
