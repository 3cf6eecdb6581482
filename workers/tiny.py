"""A tiny random Llama-style causal LM plus a byte-level BPE tokenizer, built fully offline in seconds.

Tests and local development use it wherever a real model would be too big or would need a download:

    path = build_tiny_model(Path("var/models/tiny"))
    model = AutoModelForCausalLM.from_pretrained(path)  # no trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(path)

The folder holds safetensors weights, config.json, generation_config.json, the tokenizer files (with a
ChatML chat template that marks assistant turns with ``{% generation %}``) and ``tiny_spec.json``, which is
written last and marks the build complete. Plain Python: never imports django.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

SPEC_FILE = "tiny_spec.json"
FORMAT_VERSION = 1
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

# ChatML. Assistant content plus its closing <|im_end|> sits inside {% generation %} so that
# apply_chat_template(..., return_assistant_tokens_mask=True) marks exactly the tokens a model should learn.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

CORPUS = """\
The quick brown fox jumps over the lazy dog. A model learns from examples, and better examples
make a better model. When prompt engineering and retrieval reach their ceiling, the model itself
has to change: fine-tuning, pruning, quantisation and distillation turn production failures into
better, cheaper models.
A product manager collects wrong answers in the error notebook, corrects them, and approves the
good cases. A data scientist builds a dataset version: clean the text, remove duplicates, and
split it into train and test sets.
The training job reports its loss every few steps; the training loss should go down while the
validation loss stays flat. Every checkpoint holds the weights, the optimizer state, the scheduler
and the random state, so a run can resume exactly where it stopped.
An evaluation compares the candidate with the baseline on the same cases and lists what was fixed
and what broke. The architect reads the report, checks the gate policy, and approves or rejects
the promotion to production.
The serving gateway speaks the OpenAI API, sends a small share of traffic to the new model, and
collects feedback. If the new model is worse, roll back at once; every step is versioned, audited
and traceable.
User: How do I reset my password? Assistant: Open the settings page, choose security, and click
reset password.
User: Where is my order? Assistant: Your order was shipped yesterday and should arrive within
three working days.
User: Can I change the delivery address? Assistant: Yes, before the parcel leaves the warehouse.
User: What is the refund policy? Assistant: You can return any item within thirty days.
System: You are a helpful, honest and concise assistant. Answer in the language of the question.
Numbers and code: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14 -1; x = y + 1; def main(): return None
{"role": "user", "content": "hello"} {"role": "assistant", "content": "Hi! How can I help?"}
Learning rate, batch size, warmup steps, weight decay, gradient accumulation, LoRA rank and alpha.
Accuracy, precision, recall, F1, BLEU, ROUGE, exact match, perplexity, latency, throughput, cost.
敏捷的棕色狐狸跳过了懒狗。模型从例子中学习，更好的例子带来更好的模型。
当提示工程和检索增强到达上限时，就需要改变模型本身：微调、剪枝、量化和蒸馏。
产品经理在错题本中收集错误回答，修正它们，并批准好的案例。
数据科学家构建数据集版本：清洗文本，去除重复，并划分训练集和测试集。
训练任务每隔几步报告一次损失；训练损失应该下降，而验证损失保持平稳。
评估把候选模型和基线模型在相同的案例上进行比较，列出修复了什么，又破坏了什么。
架构师阅读报告，检查门禁策略，然后批准或拒绝上线。如果新模型更差，立即回滚。
用户：我怎么重置密码？助手：打开设置页面，选择安全，然后点击重置密码。
用户：我的订单在哪里？助手：您的订单昨天已经发货，预计三个工作日内送达。
你好！有什么可以帮您的吗？谢谢，再见。
"""


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape and seed of the tiny model; the same spec always gives the same files.

    hidden_size: width of the residual stream (must divide by num_heads).
    num_layers: number of decoder layers.
    num_heads: attention heads per layer.
    num_kv_heads: key/value heads (grouped-query attention; must divide num_heads).
    intermediate_size: width of the SwiGLU MLP.
    vocab_size: target size of the BPE vocabulary, special tokens included. The built corpus yields
        exactly this many tokens for sizes up to about 1480; the model's embedding always matches the
        tokenizer's real size (read ``config.vocab_size`` or ``len(tokenizer)``).
    max_position_embeddings: longest sequence (also the tokenizer's model_max_length).
    seed: seeds weight initialisation; the tokenizer is deterministic anyway.
    """

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 768
    max_position_embeddings: int = 512
    seed: int = 0


def build_tokenizer(spec: TinyModelSpec):
    """Train a byte-level BPE on CORPUS and wrap it as a PreTrainedTokenizerFast with the ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
        unk_token=None,
        model_max_length=spec.max_position_embeddings,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(spec: TinyModelSpec, tokenizer):
    """A randomly initialised LlamaForCausalLM whose weights depend only on ``spec``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    eos_id, im_end_id = tokenizer.convert_tokens_to_ids([ENDOFTEXT, IM_END])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config).to(torch.float32).eval()
    # Chat replies end with <|im_end|>, plain text with <|endoftext|>: generation stops at either.
    model.generation_config = GenerationConfig(
        bos_token_id=eos_id, eos_token_id=[im_end_id, eos_id], pad_token_id=eos_id
    )
    return model


def read_spec_marker(path: Path) -> dict | None:
    """The marker written by a complete build in ``path``, or None."""
    try:
        return json.loads((Path(path) / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_complete_build(path: Path, spec: TinyModelSpec) -> bool:
    """Whether ``path`` already holds a finished build of exactly this spec."""
    marker = read_spec_marker(path)
    return (
        marker is not None
        and marker.get("format") == FORMAT_VERSION
        and marker.get("spec") == asdict(spec)
        and (Path(path) / "model.safetensors").is_file()
    )


def _write_build(folder: Path, spec: TinyModelSpec) -> None:
    tokenizer = build_tokenizer(spec)
    model = build_model(spec, tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    marker = {"format": FORMAT_VERSION, "spec": asdict(spec), "actual_vocab_size": len(tokenizer)}
    (folder / SPEC_FILE).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    _make_readable(folder)


def _make_readable(folder: Path) -> None:
    """mkdtemp makes a 0700 folder and the weights come out 0600; web and worker users must read them."""
    folder.chmod(0o755)
    for item in folder.iterdir():
        item.chmod(0o644)


def _move_into_place(built: Path, out_dir: Path, spec: TinyModelSpec) -> None:
    if is_complete_build(out_dir, spec):  # a concurrent builder won the race
        return
    if out_dir.exists():  # a stale or different build: move it aside, then delete it
        stale = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.stale-", dir=out_dir.parent))
        os.replace(out_dir, stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(built, out_dir)
    except OSError:
        if not is_complete_build(out_dir, spec):
            raise


def build_tiny_model(out_dir: Path, spec: TinyModelSpec | None = None) -> Path:
    """Build the tiny model and tokenizer into ``out_dir`` and return it.

    Idempotent: returns at once when ``out_dir`` already holds a complete build of the same spec. Otherwise
    everything is written into a temporary sibling folder which is then renamed onto ``out_dir``, so readers
    never see a half-written model.
    """
    spec = spec or TinyModelSpec()
    out_dir = Path(out_dir)
    if is_complete_build(out_dir, spec):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        _write_build(building, spec)
        _move_into_place(building, out_dir, spec)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=TinyModelSpec.seed)
    args = parser.parse_args(argv)
    print(build_tiny_model(args.out_dir, TinyModelSpec(seed=args.seed)))


if __name__ == "__main__":
    main()
