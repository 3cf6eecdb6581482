"""workers.serve: the gateway's LRU of loaded versions, adapters attached to one shared base, streaming."""

import threading
import time

import pytest

from workers.generate import GenerateConfig, generate, load_causal, prompt_ids
from workers.serve import ModelCache, ServeError, ServeSpec

GREEDY = GenerateConfig(max_new_tokens=8)
CHAT = [{"role": "user", "content": "Where is my order?"}]


@pytest.fixture(scope="module")
def adapters(tiny_dir, tmp_path_factory):
    """Two LoRA adapters over the tiny model, random B (init_lora_weights=False) so that they answer differently."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folders = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_dir)
        lora = LoraConfig(
            r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False,
            task_type="CAUSAL_LM",
        )  # fmt: skip
        out = tmp_path_factory.mktemp(f"adapter{seed}") / "adapter"
        get_peft_model(base, lora).save_pretrained(out, safe_serialization=True)
        folders.append(out)
    return folders


def base_spec(tiny_dir):
    return ServeSpec(key="version:1", path=str(tiny_dir), task="causal_lm", fmt="hf")


def adapter_spec(tiny_dir, folder, n):
    return ServeSpec(
        key=f"version:{n}", path=str(folder), task="causal_lm", fmt="peft_adapter",
        base_key="version:1", base_path=str(tiny_dir),
    )  # fmt: skip


def reference(model_dir, base_dir=None, messages=CHAT):
    model, tokenizer = load_causal(str(model_dir), base_dir=str(base_dir) if base_dir else None, device="cpu")
    return generate(model, tokenizer, [prompt_ids(tokenizer, messages)], GREEDY)[0]


def test_two_adapters_share_one_base_and_each_answers_like_its_merged_model(tiny_dir, adapters):
    cache = ModelCache(capacity=1, device="cpu")
    first = cache.get(adapter_spec(tiny_dir, adapters[0], 2))
    second = cache.get(adapter_spec(tiny_dir, adapters[1], 3))
    base = cache.get(base_spec(tiny_dir))
    assert first._weights is second._weights is base._weights  # one weight set: the base loaded once
    assert cache.loaded() == ["version:2", "version:3", "version:1"]

    answers = [first.chat(CHAT, GREEDY), second.chat(CHAT, GREEDY), base.chat(CHAT, GREEDY)]
    expected = [reference(adapters[0], tiny_dir), reference(adapters[1], tiny_dir), reference(tiny_dir)]
    assert [a.token_ids for a in answers] == [e.token_ids for e in expected]
    assert len({tuple(a.token_ids) for a in answers}) == 3
    assert first.chat(CHAT, GREEDY).token_ids == expected[0].token_ids  # switching back and forth holds


def test_a_full_model_evicts_the_least_recently_used_base_with_its_adapters(
    tiny_dir, tiny_bert_dir, adapters
):
    cache = ModelCache(capacity=1, device="cpu")
    cache.get(adapter_spec(tiny_dir, adapters[0], 2))
    classifier = cache.get(
        ServeSpec(key="version:9", path=str(tiny_bert_dir), task="classification", fmt="hf")
    )
    assert cache.loaded() == ["version:9"]
    again = cache.get(adapter_spec(tiny_dir, adapters[0], 2))
    assert cache.loaded() == ["version:1", "version:2"]  # the base came back with it
    assert again.chat(CHAT, GREEDY).token_ids == reference(adapters[0], tiny_dir).token_ids
    assert classifier.chat(CHAT, GREEDY).text  # an evicted version still answers the request that holds it


def test_capacity_two_keeps_the_most_recently_used(tiny_dir, tiny_bert_dir):
    cache = ModelCache(capacity=2, device="cpu")
    bert = ServeSpec(key="version:9", path=str(tiny_bert_dir), task="classification", fmt="hf")
    cache.get(base_spec(tiny_dir))
    cache.get(bert)
    cache.get(base_spec(tiny_dir))  # used again: the classifier is now the least recent
    cache.get(ServeSpec(key="version:5", path=str(tiny_dir), task="causal_lm", fmt="hf"))
    assert cache.loaded() == ["version:1", "version:5"]
    cache.evict("version:5")
    assert cache.loaded() == ["version:1"]


def test_concurrent_requests_for_one_version_load_it_once(tiny_dir, adapters, monkeypatch):
    from workers.compress import load

    calls = []
    real = load.load_model
    monkeypatch.setattr(load, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    cache = ModelCache(capacity=2, device="cpu")
    got, barrier = [], threading.Barrier(6)

    def ask(spec):
        barrier.wait()
        got.append(cache.get(spec))

    specs = [adapter_spec(tiny_dir, adapters[0], 2)] * 3 + [base_spec(tiny_dir)] * 3
    threads = [threading.Thread(target=ask, args=(s,)) for s in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len({id(s) for s in got if s.key == "version:2"}) == 1
    assert len({id(s) for s in got if s.key == "version:1"}) == 1


def test_streaming_yields_deltas_that_add_up_to_the_greedy_answer(tiny_dir, adapters):
    cache = ModelCache(device="cpu")
    served = cache.get(adapter_spec(tiny_dir, adapters[1], 3))
    items = list(served.stream_chat(CHAT, GREEDY))
    final, deltas = items[-1], items[:-1]
    assert all(isinstance(d, str) for d in deltas) and len(deltas) > 1
    assert "".join(deltas) == final.text
    whole = served.chat(CHAT, GREEDY)
    assert (final.token_ids, final.text, final.finish_reason) == (
        whole.token_ids,
        whole.text,
        whole.finish_reason,
    )
    sampled = GenerateConfig(max_new_tokens=8, do_sample=True, temperature=0.9, top_p=0.9, seed=3)
    assert (
        list(served.stream_complete("The quick", sampled))[-1].token_ids
        == served.complete("The quick", sampled).token_ids
    )


def test_a_stop_sequence_is_never_streamed(tiny_dir):
    served = ModelCache(device="cpu").get(base_spec(tiny_dir))
    whole = served.complete("The quick brown", GenerateConfig(max_new_tokens=12))
    stop = whole.text[3:6]
    config = GenerateConfig(max_new_tokens=12, stop=[stop])
    items = list(served.stream_complete("The quick brown", config))
    assert "".join(items[:-1]) == items[-1].text == served.complete("The quick brown", config).text
    assert stop not in items[-1].text


def test_a_classifier_answers_with_the_label_of_the_last_user_message(tiny_bert_dir):
    from tests.conftest import TINY_BERT_LABELS

    served = ModelCache(device="cpu").get(
        ServeSpec(key="version:9", path=str(tiny_bert_dir), task="classification", fmt="hf")
    )
    messages = [{"role": "system", "content": "x"}, {"role": "user", "content": "my parcel is late"}]
    answer = served.chat(messages, GREEDY)
    assert answer.text in TINY_BERT_LABELS
    assert (answer.new_tokens, answer.finish_reason) == (1, "stop") and answer.prompt_tokens > 1
    items = list(served.stream_chat(messages, GREEDY))
    assert [items[0], items[1].text, len(items)] == [answer.text, answer.text, 2]
    with pytest.raises(ServeError, match="no user message"):
        served.chat([{"role": "system", "content": "x"}], GREEDY)


def test_missing_folders_and_bad_prompts_are_serve_errors_naming_them(tiny_dir, tmp_path):
    cache = ModelCache(device="cpu")
    missing = tmp_path / "gone"
    with pytest.raises(ServeError, match=str(missing)):
        cache.get(ServeSpec(key="version:4", path=str(missing), task="causal_lm", fmt="hf"))
    with pytest.raises(ServeError, match=str(missing)):
        cache.get(adapter_spec(tiny_dir, missing, 4))
    assert cache.loaded() == ["version:1"]  # the adapter's base loaded; the adapter did not
    with pytest.raises(ServeError, match="base_key"):
        cache.get(ServeSpec(key="version:4", path=str(tiny_dir), task="causal_lm", fmt="peft_adapter"))
    served = cache.get(base_spec(tiny_dir))
    with pytest.raises(ServeError, match="messages"):
        served.chat([], GREEDY)
    with pytest.raises(ServeError, match="messages\\[0\\]"):
        served.chat([{"role": "user"}], GREEDY)
    with pytest.raises(ServeError, match="prompt is empty"):
        served.complete("", GREEDY)
    with pytest.raises(ServeError, match="max_new_tokens"):
        served.chat(CHAT, GenerateConfig(max_new_tokens=0))


def test_requests_queued_while_the_model_is_busy_are_decoded_together_with_unchanged_answers(
    tiny_dir, monkeypatch
):
    from workers.generate import decode

    served = ModelCache(device="cpu").get(base_spec(tiny_dir))
    prompts = [f"{q} {n}" for n in range(3) for q in ("Where is my order?", "Refund please")]
    alone = {p: served.complete(p, GREEDY).token_ids for p in prompts}
    sampled = GenerateConfig(max_new_tokens=8, do_sample=True, seed=5)
    sampled_alone = served.complete(prompts[0], sampled).token_ids
    batches, real = [], decode.generate
    monkeypatch.setattr(
        decode, "generate", lambda m, t, ids, c: batches.append(len(ids)) or real(m, t, ids, c)
    )
    weights, got = served._weights, {}
    jobs = [(p, GenerateConfig(max_new_tokens=8, seed=n)) for n, p in enumerate(prompts)] + [
        (prompts[0], sampled)
    ]

    def ask(prompt, config):
        got[(prompt, config.do_sample)] = served.complete(prompt, config).token_ids

    with weights.lock:  # the model is busy: every request queues
        threads = [threading.Thread(target=ask, args=job) for job in jobs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(weights.queue) < len(jobs) and time.monotonic() < deadline:
            time.sleep(0.01)
    for t in threads:
        t.join(30)
    assert sorted(batches) == [1, len(prompts)]  # the greedy ones in one batch, the sampled one alone
    assert {p: got[(p, False)] for p in prompts} == alone
    assert got[(prompts[0], True)] == sampled_alone
