"""Loading a model version for generation, rendering prompts as in training, measuring memory and size."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import torch

from workers.generate.config import GenerateError
from workers.train.data import ALPACA_PROMPT, ALPACA_RESPONSE


def _check_folder(path: Path, what: str, weights: str) -> None:
    if not path.is_dir():
        raise GenerateError(f"{what} {path} does not exist or is not a folder")
    if not any(p.name.endswith(".safetensors") for p in path.iterdir()):
        raise GenerateError(f"{what} {path} has no {weights} (only safetensors weights are loaded)")
    if (
        path / "quantization.json"
    ).is_file():  # from_pretrained would fill its int8 layers with random weights
        raise GenerateError(f"{what} {path} is quantised: load it with workers.compress.load_model")


def load_causal(model_dir: str, *, base_dir: str | None = None, device: str | None = None):
    """(model, tokenizer) from a Hugging Face folder, or a PEFT adapter folder merged over ``base_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(model_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    adapter = (folder / "adapter_config.json").is_file()
    if adapter:
        if not base_dir:
            raise GenerateError(f"{folder} is a PEFT adapter: its base model folder (base_dir) is required")
        _check_folder(folder, "adapter folder", "adapter_model.safetensors")
        base = Path(base_dir)
        _check_folder(base, "base model folder", ".safetensors weights")
    else:
        _check_folder(folder, "model folder", ".safetensors weights")
        base = folder
    has_tokenizer = any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(folder if has_tokenizer else base, trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = {"trust_remote_code": False, "use_safetensors": True, "dtype": dtype}
    try:
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
        if adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, folder)
            if model.peft_config["default"].is_prompt_learning:
                raise GenerateError(
                    f"{folder} holds virtual tokens (prefix / prompt tuning), which cannot be merged"
                )
            model = model.merge_and_unload()
    except (OSError, ValueError) as exc:
        raise GenerateError(f"cannot load {folder}: {exc}") from None
    return model.to(device).eval(), tokenizer


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The prompt as the model saw it in training, ending where the assistant's answer starts.

    Trailing assistant messages (the reference answer) are left out. With a chat template: the template with
    ``add_generation_prompt=True``; without one: the Alpaca prompt of workers.train.data from the system message
    and the last user message.
    """
    messages = list(messages)
    while messages and messages[-1].get("role") == "assistant":
        messages.pop()
    if not messages:
        raise GenerateError("a prompt needs at least one message before the answer")
    if tokenizer.chat_template:
        out = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(out["input_ids"])
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    text = (system + "\n\n" if system else "") + ALPACA_PROMPT.format(instruction=user) + ALPACA_RESPONSE
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def peak_memory_bytes(device) -> int:
    """Peak memory so far: allocated on a CUDA device, else this process's peak resident set."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def folder_size_bytes(path) -> int:
    """Bytes of all files under ``path`` (links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total
