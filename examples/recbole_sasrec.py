"""igrsr's layers inside RecBole 1.2.1's SASRec (and its DuoRec/CL4SRec contrastive loss).

Two ways in, both keeping RecBole's embeddings, data pipeline, trainer and evaluation:

- :func:`use_igrsr_attention`: every ``MultiHeadAttention`` of the model becomes igrsr's
  :class:`~igrsr.nn.CausalSelfAttention` with RecBole's residual and post-LayerNorm around it;
- :func:`use_igrsr_blocks`: the whole ``TransformerEncoder`` becomes igrsr's
  :class:`~igrsr.nn.CausalTransformerLayer` blocks in post-norm mode.

Both copy the trained (or freshly initialised) RecBole weights, so the model computes what
it computed before at every real position.  :func:`nt_xent_loss` is DuoRec's and CL4SRec's
NT-Xent on :class:`~igrsr.nn.InfoNCELoss`.  Conventions (RecBole right-pads, igrsr's models
left-pad; the masks) are in docs/conventions.md.

RecBole 1.2.1 predates NumPy 2: its ``Config`` assigns ``np.float_`` and friends, which NumPy 2
removed; :func:`restore_numpy_aliases` puts them back before RecBole is used.

    python examples/recbole_sasrec.py              # max |difference| on an ml-100k batch
    python examples/recbole_sasrec.py --epochs 5   # and train the igrsr version with RecBole

Training runs RecBole's Trainer, which writes ``log_tensorboard/`` in the current directory.
"""

import argparse
import copy
import os
import tempfile

import numpy as np
import torch
from torch import nn

from igrsr.nn import CausalSelfAttention, CausalTransformerLayer, InfoNCELoss, recbole_transformer_layer_state_dict

# Removed in NumPy 2.0; RecBole 1.2.1's Config.compatibility_settings reads them.
NUMPY_ALIASES = {"float_": "float64", "complex_": "complex128", "unicode_": "str_"}


def restore_numpy_aliases() -> None:
    for old, new in NUMPY_ALIASES.items():
        if old not in np.__dict__:
            setattr(np, old, getattr(np, new))


def valid_mask_from_recbole(attention_mask: torch.Tensor) -> torch.Tensor:
    """True = real token (B, L), from RecBole's additive mask (B, 1, L, L) of 0 / -10000: the
    last query row of a causal mask sees every real key."""
    return attention_mask[:, 0, -1, :] == 0


class IgrsrMultiHeadAttention(nn.Module):
    """RecBole's ``MultiHeadAttention`` interface (``forward(x, attention_mask)``, residual and
    post-LayerNorm included) over igrsr's causal attention.  RecBole's attention-probability
    dropout (``attn_dropout_prob``) has no counterpart here; ``hidden_dropout_prob`` is the
    attention layer's output dropout, as in RecBole."""

    def __init__(self, recbole_attention: nn.Module, backend: str = "auto"):
        super().__init__()
        d_model = recbole_attention.dense.in_features
        self.attention = CausalSelfAttention(
            d_model, recbole_attention.num_attention_heads, recbole_attention.out_dropout.p, backend=backend
        )
        recbole_weights = {k: v for k, v in recbole_attention.state_dict().items() if not k.startswith("LayerNorm.")}
        self.attention.load_state_dict(recbole_weights)  # query/key/value/dense → qkv/out
        self.LayerNorm = recbole_attention.LayerNorm

    def forward(self, input_tensor: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(input_tensor, valid_mask_from_recbole(attention_mask))
        return self.LayerNorm(attended + input_tensor)


class IgrsrTransformerEncoder(nn.Module):
    """RecBole's ``TransformerEncoder`` interface over post-norm :class:`CausalTransformerLayer`
    blocks with RecBole's feed-forward width, activation and LayerNorm eps, weights copied."""

    def __init__(self, recbole_encoder: nn.Module, backend: str = "auto"):
        super().__init__()
        self.layer = nn.ModuleList(self._block(layer, backend) for layer in recbole_encoder.layer)

    @staticmethod
    def _block(recbole_layer: nn.Module, backend: str) -> CausalTransformerLayer:
        attention, ffn = recbole_layer.multi_head_attention, recbole_layer.feed_forward
        # RecBole's gelu is its own (exact, erf) method; relu is torch's function.
        activation = "gelu" if ffn.intermediate_act_fn == ffn.gelu else ffn.intermediate_act_fn.__name__
        block = CausalTransformerLayer(
            attention.dense.in_features,
            attention.num_attention_heads,
            ffn.dropout.p,
            backend=backend,
            norm="post",
            ffn_dim=ffn.dense_1.out_features,
            activation=activation,
            eps=ffn.LayerNorm.eps,
        )
        block.load_state_dict(recbole_transformer_layer_state_dict(recbole_layer.state_dict()))
        return block

    def forward(self, hidden_states, attention_mask, output_all_encoded_layers=True):
        valid_mask = valid_mask_from_recbole(attention_mask)
        outputs = []
        for block in self.layer:
            hidden_states = block(hidden_states, valid_mask)
            outputs.append(hidden_states)
        return outputs if output_all_encoded_layers else outputs[-1:]


def use_igrsr_attention(model: nn.Module, backend: str = "auto") -> nn.Module:
    """``model`` (a RecBole SASRec, or any model on its TransformerEncoder) with igrsr's
    attention in each block; returns ``model``."""
    for layer in model.trm_encoder.layer:
        layer.multi_head_attention = IgrsrMultiHeadAttention(layer.multi_head_attention, backend)
    return model


def use_igrsr_blocks(model: nn.Module, backend: str = "auto") -> nn.Module:
    """``model`` with its whole TransformerEncoder replaced by igrsr's post-norm blocks."""
    model.trm_encoder = IgrsrTransformerEncoder(model.trm_encoder, backend)
    return model


def nt_xent_loss(z_i: torch.Tensor, z_j: torch.Tensor, temperature: float, similarity: str = "dot") -> torch.Tensor:
    """DuoRec's / CL4SRec's contrastive loss, ``CrossEntropyLoss()(*model.info_nce(z_i, z_j,
    temperature, batch_size, similarity))`` in RecBole's code: NT-Xent over the 2B views."""
    return InfoNCELoss(temperature, normalize=similarity == "cos").nt_xent(z_i, z_j)


def recbole_sasrec(max_seq_length: int = 50, batch_size: int = 256, **config_changes):
    """RecBole's SASRec on the ml-100k that ships inside the recbole package, and its loaders."""
    restore_numpy_aliases()
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec

    config = Config(
        model="SASRec",
        dataset="ml-100k",
        config_dict={
            "data_path": os.path.join(os.path.dirname(recbole.__file__), "dataset_example"),
            "train_neg_sample_args": None,
            "loss_type": "CE",
            "MAX_ITEM_LIST_LENGTH": max_seq_length,
            "train_batch_size": batch_size,
            "eval_batch_size": batch_size,
            "show_progress": False,
            "checkpoint_dir": os.path.join(tempfile.gettempdir(), "recbole-igrsr"),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            **config_changes,
        },
    )
    dataset = create_dataset(config)
    loaders = data_preparation(config, dataset)
    return config, SASRec(config, loaders[0].dataset).to(config["device"]), loaders


def encoder_outputs(model: nn.Module, item_seq: torch.Tensor) -> torch.Tensor:
    """The last block's output at every position (B, L, d), as SASRec.forward computes it."""
    positions = torch.arange(item_seq.shape[1], device=item_seq.device).expand_as(item_seq)
    x = model.dropout(model.LayerNorm(model.item_embedding(item_seq) + model.position_embedding(positions)))
    return model.trm_encoder(x, model.get_attention_mask(item_seq), output_all_encoded_layers=True)[-1]


def largest_difference(theirs: nn.Module, ours: nn.Module, item_seq: torch.Tensor) -> float:
    """max |ours - theirs| over the real positions of ``item_seq`` (eval mode, no dropout)."""
    with torch.no_grad():
        difference = encoder_outputs(ours.eval(), item_seq) - encoder_outputs(theirs.eval(), item_seq)
        return difference[item_seq > 0].abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=0, help="then train the igrsr version this many epochs")
    parser.add_argument("--whole-blocks", action="store_true", help="replace whole blocks, not only attention")
    args = parser.parse_args()
    config, theirs, (train, valid, test) = recbole_sasrec(epochs=max(args.epochs, 1))
    ours = (use_igrsr_blocks if args.whole_blocks else use_igrsr_attention)(copy.deepcopy(theirs))
    item_seq = next(iter(train))[theirs.ITEM_SEQ].to(config["device"])
    print(f"max |igrsr - RecBole| at real positions: {largest_difference(theirs, ours, item_seq):.2e}")
    if args.epochs:
        from recbole.trainer import Trainer

        trainer = Trainer(config, ours)
        trainer.fit(train, valid, show_progress=True)
        print("test:", dict(trainer.evaluate(test, load_best_model=True)))


if __name__ == "__main__":
    main()
