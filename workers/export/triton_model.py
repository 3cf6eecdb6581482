"""Triton Inference Server Python backend for one exported model version (copied as ``<model>/1/model.py``).

It loads the Hugging Face folder ``model/`` beside this file with transformers (safetensors only,
``trust_remote_code=False``) and answers batches of requests:

- input ``TEXT`` (TYPE_STRING, dims [1]): one text per batch row;
- a classifier answers ``LABEL`` (TYPE_STRING, dims [1]: the most probable label) and ``PROBS`` (TYPE_FP32,
  dims [labels]: softmax probabilities in label order);
- a causal language model answers ``GENERATED_TEXT`` (TYPE_STRING, dims [1]): the greedy continuation of the
  text, rendered with the tokenizer's chat template as one user message when it has one, up to the
  ``max_new_tokens`` parameter of config.pbtxt.

The task comes from config.pbtxt's ``task`` parameter. A request whose text cannot be read gets an error response
of its own; the other requests of the batch are still answered. This file runs inside Triton, which provides
``triton_python_backend_utils``; it needs torch and transformers in the backend's Python environment and nothing
from the portal.
"""

import json
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


def _parameter(config: dict, name: str, default: str) -> str:
    return ((config.get("parameters") or {}).get(name) or {}).get("string_value") or default


def _texts(request) -> list[str]:
    array = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array]


class TritonPythonModel:
    def initialize(self, args):
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

        config = json.loads(args["model_config"])
        self.task = _parameter(config, "task", "causal_lm")
        self.max_new_tokens = int(_parameter(config, "max_new_tokens", "128"))
        folder = Path(__file__).resolve().parent / "model"
        gpu = args.get("model_instance_kind") == "GPU" and torch.cuda.is_available()
        self.device = torch.device(f"cuda:{args.get('model_instance_device_id', 0)}" if gpu else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        auto = AutoModelForSequenceClassification if self.task == "classification" else AutoModelForCausalLM
        self.model = auto.from_pretrained(folder, trust_remote_code=False, use_safetensors=True)
        self.model.to(self.device).eval()
        if self.task == "classification":
            id2label = self.model.config.id2label
            self.labels = [str(id2label[i]) for i in range(self.model.config.num_labels)]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                texts = _texts(request)
                outputs = self._classify(texts) if self.task == "classification" else self._generate(texts)
                responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
            except Exception as exc:  # one bad request must not fail the batch
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
                )
        return responses

    @torch.no_grad()
    def _classify(self, texts: list[str]):
        batch = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        logits = self.model(**batch).logits.float()
        probs = torch.softmax(logits, dim=-1).cpu().numpy().astype(np.float32)
        labels = np.array([[self.labels[i].encode("utf-8")] for i in probs.argmax(axis=-1)], dtype=np.object_)
        return [pb_utils.Tensor("LABEL", labels), pb_utils.Tensor("PROBS", probs)]

    @torch.no_grad()
    def _generate(self, texts: list[str]):
        answers = []
        for text in texts:  # one at a time: no padding, so the answer is the same as alone
            if self.tokenizer.chat_template:
                ids = self.tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                                         add_generation_prompt=True, return_tensors="pt",
                                                         return_dict=True)["input_ids"]  # fmt: skip
            else:
                ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
            ids = ids.to(self.device)
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                      max_new_tokens=self.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id)  # fmt: skip
            answers.append(self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
        return [
            pb_utils.Tensor(
                "GENERATED_TEXT", np.array([[a.encode("utf-8")] for a in answers], dtype=np.object_)
            )
        ]

    def finalize(self):
        self.model = None
