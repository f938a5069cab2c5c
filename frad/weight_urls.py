"""Where each backbone's ImageNet weights are downloaded from (EfficientNet-Lite0's ship in a pip package).

torch-free, so that the link check (``python -m pipeline.download --check``) asks every URL without importing torch.
WRN50-2: torchvision's ``Wide_ResNet50_2_Weights.IMAGENET1K_V1``, the weights of the paper's backbone (tests compare
this URL with torchvision's)."""

WEIGHT_URLS: dict[str, str] = {
    "wide_resnet50_2": "https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth",
}
