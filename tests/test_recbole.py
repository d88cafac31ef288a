"""igrsr's layers inside RecBole 1.2.1's SASRec give RecBole's outputs for the same weights, and
InfoNCELoss gives DuoRec's / CL4SRec's NT-Xent (examples/recbole_sasrec.py; skipped without
recbole: `pip install recbole==1.2.1`)."""

import copy
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("recbole")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "recbole_sasrec.py"
spec = importlib.util.spec_from_file_location("recbole_sasrec_example", EXAMPLE)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)

from igrsr.nn import CausalSelfAttention, CausalTransformerLayer  # noqa: E402

# float32 on the CPU: the two attention implementations sum in different orders.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sasrec_and_batch():
    torch.manual_seed(0)
    config, model, (train, _, _) = example.recbole_sasrec(max_seq_length=50, batch_size=128)
    batch = next(iter(train))
    return model.eval(), batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]


def assert_same_model_outputs(theirs, ours, item_seq, item_seq_len):
    assert (item_seq == 0).any() and (item_seq[:, 0] > 0).all(), "a right-padded batch with padding"
    assert example.largest_difference(theirs, ours, item_seq) < TOLERANCE
    with torch.no_grad():
        torch.testing.assert_close(
            ours.eval()(item_seq, item_seq_len), theirs(item_seq, item_seq_len), rtol=0, atol=TOLERANCE
        )


def test_igrsr_attention_in_recbole_sasrec_gives_its_outputs(sasrec_and_batch):
    theirs, item_seq, item_seq_len = sasrec_and_batch
    ours = example.use_igrsr_attention(copy.deepcopy(theirs))
    layers = [layer.multi_head_attention.attention for layer in ours.trm_encoder.layer]
    assert len(layers) == 2 and all(isinstance(layer, CausalSelfAttention) for layer in layers)
    assert_same_model_outputs(theirs, ours, item_seq, item_seq_len)


def test_igrsr_post_norm_blocks_replace_recbole_transformer_encoder(sasrec_and_batch):
    theirs, item_seq, item_seq_len = sasrec_and_batch
    ours = example.use_igrsr_blocks(copy.deepcopy(theirs))
    assert all(isinstance(block, CausalTransformerLayer) and not block.pre_norm for block in ours.trm_encoder.layer)
    assert ours.trm_encoder.layer[0].ffn_norm.eps == theirs.trm_encoder.layer[0].feed_forward.LayerNorm.eps
    assert_same_model_outputs(theirs, ours, item_seq, item_seq_len)


def recbole_nt_xent(z_i, z_j, temperature, similarity):
    """RecBole's own code of DuoRec's contrastive loss (FEARec.info_nce, by DuoRec's authors)."""
    from recbole.model.sequential_recommender.fearec import FEARec

    batch = z_i.shape[0]
    owner = SimpleNamespace(batch_size=batch, mask_default=FEARec.mask_correlated_samples(None, batch))
    logits, labels = FEARec.info_nce(owner, z_i, z_j, temperature, batch, sim=similarity)
    return torch.nn.functional.cross_entropy(logits, labels)


@pytest.mark.parametrize("similarity", ["dot", "cos"])
def test_info_nce_loss_is_duorecs_nt_xent(sasrec_and_batch, similarity):
    theirs, item_seq, item_seq_len = sasrec_and_batch
    with torch.no_grad():
        user_vectors = theirs(item_seq, item_seq_len)
    z_i = user_vectors[:64].clone().requires_grad_()
    z_j = (user_vectors[64:128] + 0.1 * torch.randn_like(user_vectors[64:128])).requires_grad_()
    expected = recbole_nt_xent(z_i, z_j, 1.0, similarity)
    expected_grads = torch.autograd.grad(expected, (z_i, z_j))
    got = example.nt_xent_loss(z_i, z_j, 1.0, similarity)
    got_grads = torch.autograd.grad(got, (z_i, z_j))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for ours, reference in zip(got_grads, expected_grads):
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-6)
