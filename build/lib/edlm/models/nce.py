"""The EDLM-NCE energy network: a bidirectional DiT over (x_t, x0) that outputs one scalar energy.

x_t is x0 with some positions masked, so the pair is encoded as the tokens of x0 plus a learned vector added at
the positions that were masked in x_t. Low energy means "looks like real text".
"""
from __future__ import annotations

import torch
import torch.nn as nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from ..noise import get_schedule
from .dit import DiTBackbone, DiTConfig


class EnergyConfig(DiTConfig):
    model_type = "edlm-energy"


class EnergyModel(PreTrainedModel):
    """E(x0, x_t, t) -> [B] energies, returned as `logits`."""

    config_class = EnergyConfig
    base_model_prefix = "backbone"

    def __init__(self, config: EnergyConfig):
        super().__init__(config)
        self.backbone = DiTBackbone(config, out_dim=config.hidden_size)
        self.masked_embed = nn.Parameter(torch.zeros(config.hidden_size))
        self.head = nn.Linear(config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.schedule = get_schedule(config.schedule)
        self.post_init()

    def _init_weights(self, module):
        pass

    @classmethod
    def from_denoiser(cls, denoiser: PreTrainedModel) -> "EnergyModel":
        """Initialise the trunk from a trained denoiser (its vocabulary output layer is not used)."""
        config = EnergyConfig(**{k: v for k, v in denoiser.config.to_dict().items()
                                 if k not in ("model_type", "architectures", "transformers_version")})
        config.self_conditioning = False  # the energy reads (x0, x_t) only
        model = cls(config)
        trunk = {k: v for k, v in denoiser.backbone.state_dict().items()
                 if not k.startswith(("output_layer.linear", "self_cond_proj"))}
        model.backbone.load_state_dict(trunk, strict=False)
        # Start the feature layer as identity-like so the head sees the denoiser's features.
        with torch.no_grad():
            model.backbone.output_layer.linear.weight.copy_(torch.eye(config.hidden_size))
        return model

    def forward(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, **_) -> SequenceClassifierOutput:
        masked = (x_t == self.config.mask_token_id).unsqueeze(-1).to(self.masked_embed.dtype)
        h = self.backbone(x0, self.schedule.sigma(t), extra_embed=masked * self.masked_embed)
        return SequenceClassifierOutput(logits=self.head(h.mean(1)).squeeze(-1).float())
