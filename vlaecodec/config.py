"""Model configurations and named presets.

A ``VLAEConfig`` fully describes an architecture; checkpoints store it next to the
weights so a model is never rebuilt by guessing sizes from tensor shapes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VLAEConfig:
    image_size: int = 28
    # 2 = binary pixels (Bernoulli); 256 = 8-bit pixels (a later likelihood).
    pixel_levels: int = 2
    latent_dim: int = 64
    # "ar": the paper's autoregressive-flow prior (MADE steps, mean only);
    # "factorized": N(0, I).
    prior: str = "ar"
    prior_steps: int = 2
    prior_hidden: int = 256
    # Encoder q(z|x): strided convs to 7x7, then residual blocks.
    enc_channels: int = 32
    enc_blocks: int = 2
    # Decoder: z -> 7x7 map -> upsampling -> feature map at full resolution.
    dec_channels: int = 32
    zfeat_channels: int = 16
    # Local PixelCNN. The receptive field is what makes the VLAE "lossy":
    # with few small masked layers the decoder cannot model global structure,
    # so that information must go through z.
    pcnn_layers: int = 6
    pcnn_channels: int = 16
    pcnn_kernel: int = 3
    pcnn_out_blocks: int = 2
    # Training objective.
    free_bits: float = 0.01  # nats per latent dimension

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VLAEConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)

    @property
    def receptive_rows(self) -> int:
        """How many rows above a pixel its distribution can see."""
        return self.pcnn_layers * (self.pcnn_kernel // 2)


PRESETS: dict[str, VLAEConfig] = {
    # The shipped binarized-MNIST model (paper Appendix A, sized for CPU training).
    "vlae-mnist": VLAEConfig(),
    "vlae-mnist-factorized": VLAEConfig(prior="factorized"),
    # Wider networks for long training (issue: files at the paper's likelihood):
    # 2.6x the parameters, about 3.5x the compute per step of "vlae-mnist".
    "vlae-mnist-large": VLAEConfig(enc_channels=64, dec_channels=64, zfeat_channels=32,
                                   pcnn_channels=32, prior_hidden=640),
    "vlae-mnist-large-factorized": VLAEConfig(enc_channels=64, dec_channels=64, zfeat_channels=32,
                                              pcnn_channels=32, prior_hidden=640, prior="factorized"),
    # Same model with a decoder whose receptive field covers the whole image
    # above the pixel: used to reproduce the paper's information-preference result.
    "vlae-mnist-global": VLAEConfig(pcnn_layers=12, pcnn_kernel=5),
    # ... and with 1x1 "masked" convolutions, which see no pixel at all: a factorized
    # decoder p(x|z) = prod_i p(x_i|z), so everything the image holds must go through z.
    "vlae-mnist-factorized-decoder": VLAEConfig(pcnn_kernel=1),
    # A decoder that sees only 2 rows above a pixel, so z must carry the strokes' shape:
    # for the lossy mode (issue: lossy mode), where only z is sent and the decoder redraws.
    "vlae-mnist-lossy": VLAEConfig(pcnn_layers=2),
    # 8-bit grayscale (256-way categorical pixels): wider local PixelCNN, since gray
    # levels carry far more local detail than binary strokes.
    "vlae-mnist8": VLAEConfig(pixel_levels=256, pcnn_channels=32),
    "vlae-fashion-mnist": VLAEConfig(pixel_levels=256, pcnn_channels=32),
    "vlae-tiny8": VLAEConfig(
        pixel_levels=256, latent_dim=8, prior_hidden=32, enc_channels=8, enc_blocks=1,
        dec_channels=8, zfeat_channels=4, pcnn_layers=2, pcnn_channels=6,
        pcnn_out_blocks=1,
    ),
    # Tiny preset for tests: seconds to build and run on 2 cores.
    "vlae-tiny": VLAEConfig(
        latent_dim=8, prior_hidden=32, enc_channels=8, enc_blocks=1,
        dec_channels=8, zfeat_channels=4, pcnn_layers=2, pcnn_channels=6,
        pcnn_out_blocks=1,
    ),
}


def preset(name: str) -> VLAEConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
