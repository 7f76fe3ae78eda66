"""Model definitions (modules and forward passes only) and, beside them, weight porting.

`resnet` (torchvision-compatible encoder), `port` (torch/timm weights -> Flax, encoder
checkpoints), `generator` and `discriminator`. Import the submodule you need.
"""
