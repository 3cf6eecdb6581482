"""Step f, augment: copies of train rows with changed prompts, marked, grouped with their source, in train only."""

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from datasets_app.pipeline.augment import Augmenter, Backtranslator, add_noise
from datasets_app.pipeline.recipe import AugmentStep, BacktranslationAugment, Recipe
from datasets_app.pipeline.run import run_pipeline
from datasets_app.pipeline.types import BuildError, Example


def chat(user: str, answer: str = "Open Settings and press Refund.", line: int = 1) -> Example:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": user},
                {"role": "assistant", "content": answer}]  # fmt: skip
    return Example("chat", {"messages": messages}, "file", {"file": "a.jsonl", "line": line}, group=line)


def augment_cfg(**kinds) -> AugmentStep:
    return Recipe.from_dict(
        {"task_type": "chat", "sources": {"files": [1]}, "steps": {"augment": kinds}}
    ).steps.augment


def augmenter(**kinds) -> Augmenter:
    return Augmenter(augment_cfg(**kinds), seed=42)


class Translator(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that "translates" by tagging the text with the target language."""

    seen: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Translator.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if body["model"] == "broken":
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"model is loading")
            return
        language = body["messages"][0]["content"].split(" into ")[1].split(".")[0]
        answer = {
            "choices": [
                {"message": {"role": "assistant", "content": f"<{language}>{body['messages'][1]['content']}"}}
            ]
        }
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(answer).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    Translator.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Translator)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_it_replaces_table_words_with_synonyms_in_the_prompt_only():
    step = augmenter(synonyms={"ratio": 1.0, "table": {"refund": ["reimbursement"], "退款": ["退钱"]}})
    source = chat("How do I get a Refund? 我要退款", answer="Press refund.")

    [[copy]] = step.copies([(0, source, "synonyms")])

    assert copy.fields["messages"][1]["content"] == "How do I get a reimbursement? 我要退钱"
    assert copy.fields["messages"][2]["content"] == "Press refund."
    assert copy.fields["messages"][0]["content"] == "Be brief."
    assert (copy.augmented, copy.group, copy.split, copy.origin) == ("synonyms", 1, "train", "file")
    assert copy.ref == {"augmented_from": {"file": "a.jsonl", "line": 1}}
    assert source.fields["messages"][1]["content"] == "How do I get a Refund? 我要退款"


def test_it_makes_no_copy_when_no_table_word_is_in_the_prompt():
    step = augmenter(synonyms={"ratio": 1.0, "table": {"invoice": ["bill"]}})

    assert step.copies([(0, chat("Where is my parcel?"), "synonyms")]) == [[]]
    assert step.notes() == ["1 picked rows not changed by synonyms"]


def test_it_adds_seeded_character_noise():
    text = "我想退货，请问需要多久才能收到退款？"

    noisy = add_noise(text, 0.1, random.Random(1))

    assert noisy != text and abs(len(noisy) - len(text)) <= 2
    assert add_noise(text, 0.1, random.Random(1)) == noisy


def test_it_picks_a_seeded_share_of_train_rows_for_each_kind():
    step = augmenter(noise={"ratio": 0.25}, synonyms={"ratio": 0.1, "table": {"a": ["b"]}})

    plan = step.plan(200)

    assert len(plan["noise"]) == 50 and len(plan["synonyms"]) == 20 and plan["backtranslation"] == set()
    assert augmenter(noise={"ratio": 0.25}, synonyms={"ratio": 0.1, "table": {"a": ["b"]}}).plan(200) == plan


def test_it_back_translates_prompts_through_an_openai_compatible_endpoint(endpoint):
    cfg = BacktranslationAugment(
        ratio=1.0, endpoint=endpoint + "/", model="mt", api_key="sk-test", pivot="en"
    )
    step = Augmenter(AugmentStep(backtranslation=cfg), seed=1)

    [[copy]] = step.copies([(0, chat("我要退款"), "backtranslation")])

    assert copy.fields["messages"][1]["content"] == "<Simplified Chinese><English>我要退款"
    assert [s["path"] for s in Translator.seen] == ["/v1/chat/completions"] * 2
    assert Translator.seen[0]["auth"] == "Bearer sk-test"
    assert Translator.seen[0]["body"]["model"] == "mt" and Translator.seen[0]["body"]["temperature"] == 0


def test_it_translates_through_another_language_when_the_text_is_in_the_pivot(endpoint):
    translate = Backtranslator(BacktranslationAugment(ratio=1.0, endpoint=endpoint, model="mt", pivot="en"))
    step = Augmenter(
        augment_cfg(backtranslation={"ratio": 1.0, "pivot": "en", "endpoint": endpoint, "model": "mt"}),
        seed=1,
        backtranslate=translate,
    )

    [[copy]] = step.copies([(0, chat("Where is my refund?"), "backtranslation")])

    assert copy.fields["messages"][1]["content"] == "<English><Simplified Chinese>Where is my refund?"


def test_it_fails_the_build_naming_the_endpoint_and_its_status(endpoint):
    translate = Backtranslator(BacktranslationAugment(ratio=1.0, endpoint=endpoint, model="broken"))

    with pytest.raises(BuildError) as caught:
        translate("我要退款", "en")

    assert (
        str(caught.value)
        == f"back-translation endpoint {endpoint}/v1/chat/completions answered 503: model is loading"
    )


def test_it_fails_the_build_when_the_endpoint_cannot_be_reached():
    translate = Backtranslator(
        BacktranslationAugment(ratio=1.0, endpoint="http://127.0.0.1:9", model="m"), timeout=2
    )

    with pytest.raises(
        BuildError, match=r"endpoint http://127.0.0.1:9/v1/chat/completions could not be reached"
    ):
        translate("hello", "zh")


def test_it_adds_marked_copies_right_after_their_source_and_only_to_train(tmp_path):
    rng = random.Random(5)
    rows = [chat(" ".join(f"word{rng.randrange(10**6)}" for _ in range(12)), f"Answer number {i} is here.", i)
            for i in range(200)]  # fmt: skip
    recipe = Recipe.from_dict({"task_type": "chat", "sources": {"files": [1]},
                               "steps": {"augment": {"noise": {"ratio": 0.5, "rate": 0.05}}}})  # fmt: skip

    result = run_pipeline(rows, recipe, spool_dir=tmp_path)
    built = list(result.examples)

    copies = [e for e in built if e.augmented]
    train = [e for e in built if e.split == "train" and not e.augmented]
    assert len(copies) == round(0.5 * len(train))
    assert {e.split for e in copies} == {"train"}
    for at, example in enumerate(built):
        if example.augmented:
            source = built[at - 1]
            assert example.ref == {"augmented_from": source.ref} and example.group == source.group
            assert example.fields["messages"][2] == source.fields["messages"][2]
            assert example.fields["messages"][1] != source.fields["messages"][1]
    assert result.steps[-1].name == "augment" and result.steps[-1].notes == [
        f"{len(copies)} rows added by noise"
    ]
    assert len(result.examples) == len(built)
