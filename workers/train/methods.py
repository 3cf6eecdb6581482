"""Loading the base model safely and turning it into what the method trains.

Safetensors only, never ``trust_remote_code``. LoRA, QLoRA, prefix tuning, prompt tuning and IA3 go through
peft; "full" trains every weight. QLoRA loads the base in 4-bit NF4 through bitsandbytes, which needs CUDA.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from workers.train.config import PROMPT_METHODS, ConfigError, TrainConfig, TrainError

QLORA_NEEDS_CUDA = "QLoRA needs a CUDA GPU with bitsandbytes; this worker has none"


def check_model_dir(path: str | Path) -> Path:
    """The base model folder must exist, be readable and hold config.json and safetensors weights."""
    path = Path(path)
    if not path.is_dir():
        raise TrainError(f"base model folder {path} does not exist or is not a folder")
    try:
        names = {p.name for p in path.iterdir()}
        json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise TrainError(f"base model folder {path} has no config.json") from None
    except (OSError, ValueError) as exc:
        raise TrainError(f"base model folder {path} cannot be read: {exc}") from None
    if not any(name.endswith(".safetensors") for name in names):
        raise TrainError(
            f"base model folder {path} has no .safetensors weights (pickled weights are refused)"
        )
    return path


def check_runtime(config: TrainConfig, device: torch.device) -> None:
    """Refuse what this machine cannot do, before any heavy work."""
    if config.method == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError({"method": [QLORA_NEEDS_CUDA]}) from None
        if device.type != "cuda":
            raise ConfigError({"method": [QLORA_NEEDS_CUDA]})
    if config.precision == "fp16" and device.type != "cuda":
        raise ConfigError({"precision": ["fp16 needs a CUDA GPU; use bf16 or fp32 on CPU"]})


def resolve_precision(config: TrainConfig, device: torch.device) -> torch.dtype:
    """The autocast dtype: bf16 / fp16 on GPU, fp32 on CPU unless asked."""
    if config.precision == "fp32":
        return torch.float32
    if config.precision == "bf16":
        return torch.bfloat16
    if config.precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(config: TrainConfig, tokenizer, device: torch.device, compute_dtype: torch.dtype, labels=None):
    """The base model on ``device``; frozen bases of adapter methods are stored in the compute dtype."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs = {"trust_remote_code": False, "use_safetensors": True}
    adapter = config.method != "full"
    kwargs["dtype"] = compute_dtype if adapter and compute_dtype != torch.float32 else torch.float32
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
        kwargs["device_map"] = {"": device}
    if config.task == "classification":
        kwargs.update(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            pad_token_id=tokenizer.pad_token_id,
        )
        model = AutoModelForSequenceClassification.from_pretrained(config.base_model_path, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(config.base_model_path, **kwargs)
    if config.method != "qlora":
        model.to(device)
    model.config.use_cache = False
    return model


def apply_method(model, config: TrainConfig):
    """Wrap the base model for the method; returns the model to train (a PeftModel unless "full")."""
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.method == "full":
        model.requires_grad_(True)
        return model
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

    task_type = TaskType.SEQ_CLS if config.task == "classification" else TaskType.CAUSAL_LM
    targets = config.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    if config.method in ("lora", "qlora"):
        if config.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=config.gradient_checkpointing
            )
        peft_config = LoraConfig(
            task_type=task_type,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
        )
    elif config.method == "ia3":
        feedforward = None
        if isinstance(targets, list):  # IA3 scales the input of feed-forward modules, the output of others
            feedforward = [
                t for t in targets if any(k in t for k in ("down_proj", "fc2", "dense_4h_to_h", "w2"))
            ]
        peft_config = IA3Config(task_type=task_type, target_modules=targets, feedforward_modules=feedforward)
    elif config.method == "prefix":
        peft_config = PrefixTuningConfig(task_type=task_type, num_virtual_tokens=config.num_virtual_tokens)
    else:
        peft_config = PromptTuningConfig(task_type=task_type, num_virtual_tokens=config.num_virtual_tokens)
    return get_peft_model(model, peft_config)


def virtual_tokens(model, config: TrainConfig) -> int:
    """Positions prompt tuning prepends to the hidden states (prefix tuning adds keys/values only)."""
    return config.num_virtual_tokens if config.method == "prompt" else 0


def trainable_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def uses_varlen_attention(model) -> bool:
    """Flash-attention kernels take packed rows as cu_seqlens: one row per micro-batch costs nothing extra."""
    impl = getattr(model.config, "_attn_implementation", "") or ""
    return impl.startswith("flash_attention")


def supports_packing(config: TrainConfig) -> bool:
    return config.packing and config.task != "classification" and config.method not in PROMPT_METHODS


@torch.no_grad()
def packing_is_exact(model, device: torch.device) -> bool:
    """Probe the loaded model: a packed sequence is isolated from the one before it and matches it alone.

    Isolation is checked exactly (changing the first sequence must not change one bit of the second's logits,
    whatever the dtype); the match with the sequence alone within a tolerance fitting the weights' dtype.
    """
    vocab = model.get_input_embeddings().weight.shape[0]
    gen = torch.Generator().manual_seed(0)
    a, a2, b = (torch.randint(3, vocab, (n,), generator=gen) for n in (5, 5, 7))
    pos = torch.cat([torch.arange(5), torch.arange(7)])[None].to(device)
    was_training = model.training
    model.eval()
    try:

        def second(first: torch.Tensor) -> torch.Tensor:
            row = torch.cat([first, b])[None].to(device)
            return model(input_ids=row, position_ids=pos, use_cache=False).logits[0, 5:].float()

        packed = second(a)
        isolated = torch.equal(packed, second(a2))
        alone = model(input_ids=b[None].to(device), use_cache=False).logits[0].float()
    finally:
        model.train(was_training)
    tol = 1e-3 if model.get_input_embeddings().weight.dtype == torch.float32 else 5e-2
    return isolated and bool(torch.allclose(packed, alone, atol=tol, rtol=tol))


def merged_model(model, config: TrainConfig, adapter_dir: Path, device: torch.device):
    """The base with the adapter folded in. A 4-bit base is reloaded in 16 bits before merging."""
    if config.method != "qlora":
        return model.merge_and_unload()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        config.base_model_path, trust_remote_code=False, use_safetensors=True, dtype=torch.bfloat16
    ).to(device)
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
