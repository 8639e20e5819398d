"""MLP-ResNet head (OpenVLA-OFT's L1 regression head, reused by A1 for its MLP head and for the output layer
of its flow-matching expert).

LayerNorm -> Linear(in, hidden) -> ReLU -> ``num_blocks`` x [x + ReLU(Linear(LayerNorm(x)))] -> LayerNorm ->
Linear(hidden, out). Parameter names (``layer_norm1``, ``fc1``, ``mlp_resnet_blocks.i.ffn.{0,1}``,
``layer_norm2``, ``fc2``) follow the released A1/OpenVLA-OFT modules so released weights load by name.
"""

from __future__ import annotations

from torch import Tensor, nn


class MLPResNetBlock(nn.Module):
    """Pre-LayerNorm residual feed-forward block: x + ReLU(Linear(LN(x)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """(..., input_dim) -> (..., output_dim)."""

    def __init__(self, num_blocks: int, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(input_dim)
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList([MLPResNetBlock(hidden_dim) for _ in range(num_blocks)])
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))
