#!/usr/bin/env python3
"""Fine-tuning throughput: our engine (workers.train) against Hugging Face Trainer + peft LoRA, same work.

    .venv/bin/python bench/train_throughput.py [--quick] [--examples N] [--epochs E] [--repeats R]

Both sides train the same model (the tiny Llama of workers.tiny scaled up: 256 wide, 4 layers, its 1400-token
BPE vocabulary with the embedding and output layer padded to 32000 rows as in Llama-2-sized vocabularies,
``--vocab 0`` to keep 1400; built offline into a temporary folder; 19.6M parameters, 3.9M without the padding)
with LoRA r=16 on all attention and MLP projections, on the
same tokenised chat examples (workers.train.demo, assistant tokens learned only), with the same
hyper-parameters: batch 8, lr 1e-3, cosine with 10% linear warm-up, weight decay 0, clipping at 1.0, seed 42, one
epoch, fp32 on CPU (bf16 on GPU).

- ours: ``workers.train.train`` (packed rows, logits only where there is a target, fused AdamW);
- reference: ``transformers.Trainer`` on the same examples with ``DataCollatorForSeq2Seq`` (each batch padded to
  its own longest, labels -100 on padding), random batches (no length grouping), its default optimizer.

On CPU each side uses ``--threads`` torch threads (default 1): on a machine shared with other work, threads
that wait for each other make step times swing several-fold, and the comparison is what the bench is for.
Each side runs in a fresh child process (one at a time, ``--repeats`` times, alternating), so that its peak
memory is its own: ``peak_mem_mb`` is the child's peak RSS on CPU, ``torch.cuda.max_memory_allocated`` on GPU.
``tokens_per_s`` = real (non-padding) input tokens trained / seconds of training steps (ours: the sum of its
step times as reported; reference: Trainer's ``train_runtime``), the best of the repeats. ``loss`` /
``ref_loss``: validation loss of each side's trained adapter, computed by the same plain per-example forward,
after the same tokens. ``mfu``: model FLOPs utilisation on GPU (6N FLOPs per token for full training, 4N for
adapters, against the GPU's dense bf16 peak), null on CPU. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
HYPER = {"batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "max_grad_norm": 1.0, "seed": 42}
LORA = {"lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.0}
MAX_SEQ_LEN = 512
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def warmup_steps(n_train: int, epochs: int) -> int:
    """10% of the steps, counted the same way for both sides (a last short batch is a step)."""
    return max(1, -(-n_train // HYPER["batch_size"]) * epochs // 10)


def model_spec():
    from workers.tiny import TinyModelSpec

    return TinyModelSpec(
        hidden_size=256,
        num_layers=4,
        num_heads=8,
        num_kv_heads=4,
        intermediate_size=688,
        vocab_size=1400,
        max_position_embeddings=1024,
    )


def prepare(scratch: Path, examples: int, vocab: int) -> dict:
    """The scaled-up tiny model, its output layer padded to ``vocab`` rows, and the demo chat data."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from workers.tiny import build_tiny_model
    from workers.train.demo import write_demo_data

    tiny = build_tiny_model(scratch / "tiny", model_spec())
    folder = scratch / "model"
    model = AutoModelForCausalLM.from_pretrained(tiny)
    if vocab > model.config.vocab_size:  # as real models pad their vocabulary; the tokenizer keeps its size
        torch.manual_seed(0)
        model.resize_token_embeddings(vocab, mean_resizing=False)
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (tiny / name).exists():
            shutil.copy(tiny / name, folder / name)
    files = write_demo_data(scratch / "data", "chat", examples, max(16, examples // 8))
    return {"model": str(folder), "n_train": examples, **files}


# -- the two sides, each run in a child process -----------------------------------------------------------


def peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


@__import__("functools").cache
def val_examples(setup_json: str):
    from transformers import AutoTokenizer

    from workers.train.data import read_records, tokenize

    setup = json.loads(setup_json)
    tokenizer = AutoTokenizer.from_pretrained(setup["model"])
    return tokenize(read_records(setup["validation_file"], "chat", "v"), tokenizer, "chat", MAX_SEQ_LEN)


def plain_val_loss(model, setup: dict, device) -> float:
    """Mean target-token loss, one example at a time: the same yardstick for both sides."""
    import torch
    import torch.nn.functional as F

    data = val_examples(json.dumps(setup, sort_keys=True))
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(len(data)):
            lo, hi = data.offsets[i], data.offsets[i + 1]
            ids = torch.as_tensor(data.ids[lo:hi], dtype=torch.long, device=device)[None]
            targets = torch.as_tensor(data.targets[lo:hi], dtype=torch.long, device=device)
            logits = model(input_ids=ids).logits[0].float()
            total += float(F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum"))
            count += int((targets != -100).sum())
    return total / count


def run_ours(setup: dict, epochs: int, out: Path) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from workers.train import TrainConfig, train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps: list[tuple[int, float]] = []  # (tokens, seconds) of each step, from the reports

    def report(step, **m):
        steps.append((m["tokens_seen"], m["tokens_per_s"]))

    config = TrainConfig(
        base_model_path=setup["model"],
        output_dir=str(out),
        train_file=setup["train_file"],
        task="chat",
        method="lora",
        target_modules=TARGETS,
        epochs=epochs,
        max_seq_len=MAX_SEQ_LEN,
        scheduler="cosine",
        warmup_steps=warmup_steps(setup["n_train"], epochs),
        **HYPER,
        **LORA,
    )
    result = train(config, report)
    seconds, before = 0.0, 0
    for seen, rate in steps:
        seconds += (seen - before) / rate
        before = seen
    base = AutoModelForCausalLM.from_pretrained(setup["model"]).to(device)
    model = PeftModel.from_pretrained(base, result.adapter_path).to(device)
    return {
        "tokens": result.tokens_seen,
        "seconds": seconds,
        "loss": plain_val_loss(model, setup, device),
        "train_loss": result.train_loss,
        "peak_mem_mb": peak_memory_mb(device),
        "layout": result.layout,
        "steps": result.final_step,
        "params": sum(p.numel() for p in base.parameters()),
        "vocab": base.config.vocab_size,
    }


def run_reference(setup: dict, epochs: int, out: Path) -> dict:
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from workers.train.data import read_records, tokenize

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(setup["model"])
    data = tokenize(read_records(setup["train_file"], "chat", "t"), tokenizer, "chat", MAX_SEQ_LEN)
    rows = []
    for i in range(len(data)):  # HF labels are unshifted: label[t] = the target our data gives position t-1
        lo, hi = data.offsets[i], data.offsets[i + 1]
        ids = data.ids[lo:hi].tolist()
        labels = [-100, *data.targets[lo : hi - 1].tolist()]
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    torch.manual_seed(HYPER["seed"])
    model = AutoModelForCausalLM.from_pretrained(setup["model"])
    model = get_peft_model(
        model,
        LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            target_modules=TARGETS,
            r=LORA["lora_r"],
            lora_alpha=LORA["lora_alpha"],
            lora_dropout=LORA["lora_dropout"],
        ),
    )
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=HYPER["batch_size"],
        num_train_epochs=epochs,
        learning_rate=HYPER["lr"],
        lr_scheduler_type="cosine",
        warmup_steps=warmup_steps(len(rows), epochs),
        weight_decay=HYPER["weight_decay"],
        max_grad_norm=HYPER["max_grad_norm"],
        seed=HYPER["seed"],
        bf16=device.type == "cuda",
        use_cpu=device.type != "cuda",
        train_sampling_strategy="random",  # no length grouping (group_by_length=False in older versions)
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    metrics = trainer.train().metrics
    return {
        "tokens": int(sum(len(r["input_ids"]) for r in rows)) * epochs,
        "seconds": metrics["train_runtime"],
        "loss": plain_val_loss(trainer.model, setup, device),
        "train_loss": metrics["train_loss"],
        "peak_mem_mb": peak_memory_mb(device),
        "steps": trainer.state.global_step,
    }


def child(side: str, setup_path: Path, epochs: int, out: Path) -> None:
    setup = json.loads(setup_path.read_text())
    run = run_ours if side == "ours" else run_reference
    print("@@result " + json.dumps(run(setup, epochs, out)), flush=True)


def spawn(side: str, setup_path: Path, epochs: int, threads: int, scratch: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"{side}-", dir=scratch))
    cmd = [sys.executable, __file__, "--child", side, "--setup", str(setup_path), "--epochs", str(epochs)]
    cmd += ["--threads", str(threads), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@result ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("@@result "))


def mfu(tokens_per_s: float, params: int) -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    peak = next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
    return round(4 * params * tokens_per_s / peak, 4) if peak else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 examples, one repeat: a smoke run")
    parser.add_argument("--examples", type=int, help="training examples (default 512)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--vocab", type=int, default=32000, help="output rows (default 32000; 0: the tokenizer's 1400)"
    )
    parser.add_argument("--repeats", type=int, help="runs per side, alternating; the best counts (default 2)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per side on CPU (default 1; 0: torch's default)"
    )
    parser.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        child(args.child, args.setup, args.epochs, args.out)
        return 0

    import torch

    examples = args.examples or (128 if args.quick else 512)
    repeats = args.repeats or (1 if args.quick else 2)
    cuda = torch.cuda.is_available()
    threads = f", {args.threads} thread(s) per side" if args.threads > 0 else ""
    device = f"cuda ({torch.cuda.get_device_name()})" if cuda else f"cpu ({os.cpu_count()} cores{threads})"
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        scratch = Path(tmp)
        setup = prepare(scratch, examples, args.vocab)
        setup_path = scratch / "setup.json"
        setup_path.write_text(json.dumps(setup))
        print(
            f"train: {examples} chat examples x {args.epochs} epoch(s), {repeats} run(s) per side, {device}",
            flush=True,
        )
        runs: dict[str, list[dict]] = {"ours": [], "reference": []}
        for r in range(repeats):
            for side in ("ours", "reference") if r % 2 == 0 else ("reference", "ours"):
                started = time.perf_counter()
                run = spawn(side, setup_path, args.epochs, args.threads, scratch)
                run["tokens_per_s"] = run["tokens"] / run["seconds"]
                runs[side].append(run)
                print(
                    f"  {side:9} {run['tokens_per_s']:9.0f} tokens/s  {run['seconds']:6.1f} s training"
                    f"  val loss {run['loss']:.4f}  peak {run['peak_mem_mb']:.0f} MB  ({time.perf_counter() - started:.0f} s with start-up)",
                    flush=True,
                )
    ours = max(runs["ours"], key=lambda r: r["tokens_per_s"])
    ref = max(runs["reference"], key=lambda r: r["tokens_per_s"])
    result = {
        "bench": "train",
        "device": device,
        "model": f"tiny llama {ours['params'] / 1e6:.1f}M params (256 wide, 4 layers, vocab {ours['vocab']}), LoRA r16 all projections",
        "examples": examples,
        "tokens": ours["tokens"],
        "ref_tokens": ref["tokens"],
        "tokens_per_s": round(ours["tokens_per_s"], 1),
        "ref_tokens_per_s": round(ref["tokens_per_s"], 1),
        "ratio": round(ours["tokens_per_s"] / ref["tokens_per_s"], 3),
        "loss": round(ours["loss"], 4),
        "ref_loss": round(ref["loss"], 4),
        "loss_diff": round(ours["loss"] / ref["loss"] - 1, 4),
        "peak_mem_mb": round(max(r["peak_mem_mb"] for r in runs["ours"]), 1),
        "ref_peak_mem_mb": round(min(r["peak_mem_mb"] for r in runs["reference"]), 1),
        "mfu": mfu(ours["tokens_per_s"], ours["params"]),
        "layout": ours["layout"],
        "machine": f"{len(os.sched_getaffinity(0))} cores, python {platform.python_version()}, torch {torch.__version__}",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
