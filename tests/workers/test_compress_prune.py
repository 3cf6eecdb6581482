"""Magnitude and 2:4 pruning masks on the tiny causal LM and the tiny BERT classifier."""

import pytest
import torch

from workers.compress.config import CompressError
from workers.compress.prune import (
    apply_masks,
    magnitude_masks,
    mask_gradients,
    masked_sparsity,
    prunable_linears,
    semi_structured_masks,
)


def total_weights(masks) -> int:
    return sum(mask.numel() for mask in masks.values())


def test_prunable_linears_are_the_blocks_linears_only(causal, bert):
    llama = prunable_linears(causal)
    assert len(llama) == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers
    assert all(name.startswith("model.layers.") for name in llama)
    encoder = prunable_linears(bert)
    assert len(encoder) == 2 * 6  # query, key, value, attention output, intermediate, output
    assert not any("pooler" in name or "classifier" in name for name in encoder)


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_magnitude_pruning_reaches_the_requested_sparsity(causal, sparsity):
    masks = magnitude_masks(causal, sparsity)
    apply_masks(causal, masks)
    total = total_weights(masks)
    assert abs(masked_sparsity(causal, masks) - sparsity) <= 1 / total


def test_magnitude_pruning_uses_one_global_threshold(bert):
    masks = magnitude_masks(bert, 0.5)
    kept = torch.cat([m.weight.abs()[masks[n]] for n, m in prunable_linears(bert).items()])
    dropped = torch.cat([m.weight.abs()[~masks[n]] for n, m in prunable_linears(bert).items()])
    assert dropped.max() <= kept.min()
    shares = [float((~mask).float().mean()) for mask in masks.values()]
    assert max(shares) - min(shares) > 0.01  # layers lose different shares: no per-layer quota


def test_magnitude_pruning_breaks_ties_to_hit_the_exact_count(causal):
    for module in prunable_linears(causal).values():
        module.weight.data.fill_(1.0)  # every weight ties at the threshold
    masks = magnitude_masks(causal, 0.25)
    apply_masks(causal, masks)
    assert masked_sparsity(causal, masks) == round(total_weights(masks) * 0.25) / total_weights(masks)


def test_semi_structured_pruning_leaves_two_zeros_in_every_group_of_four(bert):
    original = {n: m.weight.detach().abs().clone() for n, m in prunable_linears(bert).items()}
    masks = semi_structured_masks(bert)
    apply_masks(bert, masks)
    assert masked_sparsity(bert, masks) == 0.5
    for name, module in prunable_linears(bert).items():
        groups = module.weight.reshape(module.out_features, -1, 4)
        assert bool(((groups == 0).sum(-1) >= 2).all()), name
        size = original[name].reshape_as(groups)
        keep = masks[name].reshape_as(groups)
        smallest_kept = size.masked_fill(~keep, float("inf")).min(-1).values
        largest_dropped = size.masked_fill(keep, -1.0).max(-1).values
        assert bool((smallest_kept >= largest_dropped).all()), name


def test_semi_structured_pruning_keeps_the_two_largest_of_four():
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
        )
    )
    linear = prunable_linears(model)["bert.encoder.layer.0.attention.self.query"]
    linear.weight.data = torch.tensor([[0.1, -4.0, 3.0, 0.2, 1.0, 2.0, -3.0, 4.0]]).repeat(8, 1)
    masks = semi_structured_masks(model)
    apply_masks(model, masks)
    assert linear.weight[0].tolist() == [0.0, -4.0, 3.0, 0.0, 0.0, 0.0, -3.0, 4.0]


def test_it_refuses_2_4_pruning_on_a_width_not_divisible_by_4():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=30, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    with pytest.raises(CompressError, match=r"divisible by 4.*mlp\.down_proj \(30\)"):
        semi_structured_masks(LlamaForCausalLM(config))


def test_it_refuses_an_architecture_it_does_not_know():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=32, n_positions=16))
    with pytest.raises(CompressError, match="'gpt2'"):
        magnitude_masks(model, 0.5)


def test_masked_gradients_keep_pruned_weights_at_zero_through_adamw(causal, tiny_dir):
    masks = magnitude_masks(causal, 0.6)
    apply_masks(causal, masks)
    handles = mask_gradients(causal, masks)
    causal.train()
    optimizer = torch.optim.AdamW(causal.parameters(), lr=1e-2, weight_decay=0.1)
    before = {n: m.weight.detach().clone() for n, m in prunable_linears(causal).items()}
    ids = torch.randint(0, causal.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    for _ in range(4):
        loss = causal(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for handle in handles:
        handle.remove()
    after = prunable_linears(causal)
    assert masked_sparsity(causal, masks) == pytest.approx(0.6, abs=1 / total_weights(masks))
    for name, mask in masks.items():
        assert bool((after[name].weight[~mask] == 0).all()), name
    assert any(not torch.equal(before[n][masks[n]], after[n].weight[masks[n]]) for n in masks)  # others learn


def test_without_the_hooks_adamw_revives_pruned_weights(causal):
    masks = magnitude_masks(causal, 0.6)
    apply_masks(causal, masks)
    optimizer = torch.optim.AdamW(causal.parameters(), lr=1e-2)
    ids = torch.randint(0, causal.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    causal(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    assert masked_sparsity(causal, masks) < 0.5  # the hooks above are what keeps them at zero
