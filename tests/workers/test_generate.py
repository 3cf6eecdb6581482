"""Batched generation on the tiny model: the same answers as Hugging Face's generate, only faster."""

import random

import pytest
import torch

import workers.generate as gen
from workers.generate import (
    GenerateConfig,
    GenerateError,
    GenerationStopped,
    folder_size_bytes,
    generate,
    load_causal,
    peak_memory_bytes,
    prompt_ids,
    reference_nll,
)
from workers.train.config import ConfigError

WORDS = [
    "the",
    "model",
    "learns",
    "from",
    "examples",
    "and",
    "a",
    "data",
    "scientist",
    "builds",
    "a",
    "dataset",
    "version",
    "when",
    "prompts",
    "fail",
]


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_causal(str(tiny_dir), device="cpu")


def make_prompts(tokenizer, n: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [
        prompt_ids(
            tokenizer, [{"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 40)))}]
        )
        for _ in range(n)
    ]


def hf_greedy(model, prompt: list[int], max_new_tokens: int) -> list[int]:
    out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new_tokens)
    return out[0, len(prompt) :].tolist()


def test_batched_greedy_equals_per_example_hugging_face_generate(tiny):
    model, tokenizer = tiny
    prompts = make_prompts(tokenizer, 24)
    assert len({len(p) for p in prompts}) > 10  # really different lengths, so batches are padded
    outputs = generate(model, tokenizer, prompts, GenerateConfig(max_new_tokens=12, max_batch_size=8))
    for prompt, out in zip(prompts, outputs, strict=True):
        expected = hf_greedy(model, prompt, 12)
        assert out.token_ids == expected
        assert out.text == tokenizer.decode(expected, skip_special_tokens=True)
        assert out.prompt_tokens == len(prompt) and out.new_tokens == len(expected)


def test_rows_with_a_near_tie_are_decoded_again_alone_and_still_match(tiny, monkeypatch):
    model, tokenizer = tiny
    prompts = make_prompts(tokenizer, 6, seed=3)
    monkeypatch.setitem(gen.TIE_RTOL, torch.float32, float("inf"))  # every row counts as a near-tie
    runs = []
    real_run = gen._Decoder.run

    def counting_run(self, batch_prompts, indices):
        runs.append(len(indices))
        return real_run(self, batch_prompts, indices)

    monkeypatch.setattr(gen._Decoder, "run", counting_run)
    outputs = generate(model, tokenizer, prompts, GenerateConfig(max_new_tokens=6))
    assert runs == [6, 1, 1, 1, 1, 1, 1]
    assert [o.token_ids for o in outputs] == [hf_greedy(model, p, 6) for p in prompts]


def test_results_come_back_in_the_order_of_the_prompts(tiny):
    model, tokenizer = tiny
    prompts = make_prompts(tokenizer, 10, seed=1)
    config = GenerateConfig(max_new_tokens=5, max_batch_size=3)
    together = generate(model, tokenizer, prompts, config)
    alone = [generate(model, tokenizer, [p], config)[0] for p in prompts]
    assert [o.prompt_tokens for o in together] == [len(p) for p in prompts]
    assert [o.token_ids for o in together] == [o.token_ids for o in alone]


def test_a_stop_sequence_cuts_the_text_and_ends_the_example(tiny):
    model, tokenizer = tiny
    prompts = make_prompts(tokenizer, 4, seed=2)
    free = generate(model, tokenizer, prompts, GenerateConfig(max_new_tokens=20))
    text = free[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip(), f"the free text {text!r} is too short to pick a stop sequence from"
    stopped = generate(model, tokenizer, prompts, GenerateConfig(max_new_tokens=20, stop=[stop]))
    assert stopped[0].text == text[: text.find(stop)]
    assert stopped[0].finish_reason == "stop"
    assert stopped[0].new_tokens < free[0].new_tokens
    assert stopped[0].token_ids == free[0].token_ids[: stopped[0].new_tokens]
    for before, after in zip(free[1:], stopped[1:], strict=True):  # others end at the stop or as before
        assert stop not in after.text and before.text.startswith(after.text)


def test_max_new_tokens_is_respected_and_reported_as_length(tiny):
    model, tokenizer = tiny
    outputs = generate(model, tokenizer, make_prompts(tokenizer, 8), GenerateConfig(max_new_tokens=3))
    assert all(o.new_tokens <= 3 and len(o.token_ids) == o.new_tokens for o in outputs)
    ended = [o for o in outputs if o.finish_reason == "length"]
    assert ended and all(o.new_tokens == 3 for o in ended)
    assert all(o.latency_s >= 0 for o in outputs)


def test_seeded_sampling_is_reproducible_and_independent_of_the_batch_size(tiny):
    model, tokenizer = tiny
    prompts = make_prompts(tokenizer, 9, seed=4)
    sample = {"do_sample": True, "temperature": 1.5, "top_p": 0.95, "max_new_tokens": 10, "seed": 7}
    big = generate(model, tokenizer, prompts, GenerateConfig(**sample, max_batch_size=16))
    again = generate(model, tokenizer, prompts, GenerateConfig(**sample, max_batch_size=16))
    small = generate(model, tokenizer, prompts, GenerateConfig(**sample, max_batch_size=2))
    other_seed = generate(model, tokenizer, prompts, GenerateConfig(**{**sample, "seed": 8}))
    greedy = generate(model, tokenizer, prompts, GenerateConfig(max_new_tokens=10))
    assert [o.token_ids for o in big] == [o.token_ids for o in again] == [o.token_ids for o in small]
    assert [o.token_ids for o in big] != [o.token_ids for o in other_seed]
    assert [o.token_ids for o in big] != [o.token_ids for o in greedy]


def test_the_progress_callback_can_stop_generation(tiny):
    model, tokenizer = tiny
    calls = []

    def progress(done, total):
        calls.append((done, total))
        return "stop"

    with pytest.raises(GenerationStopped):
        generate(model, tokenizer, make_prompts(tokenizer, 6), GenerateConfig(max_new_tokens=2, max_batch_size=4),
                 progress=progress)  # fmt: skip
    assert calls == [(4, 6)]
    seen = []
    generate(model, tokenizer, make_prompts(tokenizer, 6), GenerateConfig(max_new_tokens=2, max_batch_size=4),
             progress=lambda d, t: seen.append((d, t)))  # fmt: skip
    assert seen == [(4, 6), (6, 6)]


def test_an_adapter_over_its_base_generates_what_the_merged_model_does(tiny_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(base, lora)
    for name, p in peft_model.named_parameters():  # random B as well, scaled so the answers change
        if "lora_" in name:
            torch.nn.init.normal_(p, std=0.5)
    peft_model.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    peft_model.merge_and_unload().save_pretrained(tmp_path / "merged", safe_serialization=True)
    _, tokenizer = load_causal(str(tiny_dir), device="cpu")
    tokenizer.save_pretrained(tmp_path / "merged")

    adapted, tok = load_causal(str(tmp_path / "adapter"), base_dir=str(tiny_dir), device="cpu")
    merged, _ = load_causal(str(tmp_path / "merged"), device="cpu")
    plain, _ = load_causal(str(tiny_dir), device="cpu")
    prompts = make_prompts(tok, 6, seed=5)
    config = GenerateConfig(max_new_tokens=8)
    ours = [o.token_ids for o in generate(adapted, tok, prompts, config)]
    assert ours == [o.token_ids for o in generate(merged, tok, prompts, config)]
    assert ours != [o.token_ids for o in generate(plain, tok, prompts, config)]
    assert folder_size_bytes(tmp_path / "adapter") < folder_size_bytes(tmp_path / "merged")


def test_missing_folders_and_a_missing_base_are_clear_errors(tiny_dir, tmp_path):
    with pytest.raises(GenerateError, match="does not exist"):
        load_causal(str(tmp_path / "nowhere"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"never read")
    with pytest.raises(GenerateError, match="base_dir"):
        load_causal(str(adapter))
    with pytest.raises(GenerateError, match="base model folder .* does not exist"):
        load_causal(str(adapter), base_dir=str(tmp_path / "no-base"))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(GenerateError, match="safetensors"):
        load_causal(str(pickled))


def test_config_validation_lists_every_problem():
    bad = GenerateConfig(max_new_tokens=0, temperature=0.0, top_p=1.5, seed=-1, stop=[""], max_batch_size=0,
                         max_batch_tokens=0)  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        bad.validate()
    assert set(caught.value.problems) == {
        "max_new_tokens", "temperature", "top_p", "seed", "stop", "max_batch_size", "max_batch_tokens",
    }  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        GenerateConfig.from_dict({"max_new_tokens": "64", "do_sample": 1, "top_p": 0, "beam": 4, "stop": "x"})
    assert set(caught.value.problems) == {"max_new_tokens", "do_sample", "top_p", "beam", "stop"}
    assert "is not a known setting" in caught.value.problems["beam"]
    config = GenerateConfig.from_dict({"max_new_tokens": 64, "stop": ["\n\n"], "temperature": 1})
    assert config == GenerateConfig(max_new_tokens=64, stop=["\n\n"], temperature=1.0)


def test_reference_nll_equals_a_plain_forward_per_example(tiny):
    model, tokenizer = tiny
    prompts = make_prompts(tokenizer, 7, seed=6)
    rng = random.Random(0)
    references = [tokenizer(" ".join(rng.choices(WORDS, k=rng.randint(1, 12))))["input_ids"] for _ in prompts]
    references[3] = []
    got = reference_nll(model, tokenizer, prompts, references, max_batch_size=3)
    for prompt, ref, (nll, count) in zip(prompts, references, got, strict=True):
        assert count == len(ref)
        if not ref:
            assert nll == 0.0
            continue
        with torch.no_grad():
            logits = model(torch.tensor([prompt + ref])).logits[0].float().log_softmax(-1)
        expected = -sum(float(logits[len(prompt) - 1 + t, tok]) for t, tok in enumerate(ref))
        assert nll == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_prompts_are_rendered_as_in_training(tiny):
    _, tokenizer = tiny
    messages = [{"role": "user", "content": "Where is my order?"}, {"role": "assistant", "content": "Here."}]
    ids = prompt_ids(tokenizer, messages)
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")
    assert "Here." not in tokenizer.decode(ids)
    plain = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    text = plain.decode(prompt_ids(plain, [{"role": "system", "content": "Be brief."}, *messages[:1]]))
    assert text.endswith("Be brief.\n\n### Instruction:\nWhere is my order?\n\n### Response:\n")


def test_an_empty_prompt_is_refused_and_memory_is_measured(tiny):
    model, tokenizer = tiny
    with pytest.raises(GenerateError, match="prompt 1 is empty"):
        generate(model, tokenizer, [[1, 2], []], GenerateConfig(max_new_tokens=2))
    assert generate(model, tokenizer, [], GenerateConfig()) == []
    assert peak_memory_bytes("cpu") > 10 * 2**20
