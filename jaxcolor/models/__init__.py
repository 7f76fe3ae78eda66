"""Model definitions (modules and forward passes only) and, beside them, weight porting.

`resnet` (torchvision-compatible encoder), `generator` and `discriminator`, `factory`
(config.model -> G, D and the compute dtype: the one place that reads the model config) and
`port` (torch/timm weights -> Flax, encoder checkpoints). Import the submodule you need.
"""
