"""Networks this stack's libraries lack, registered in mmseg's ``MODELS`` on import.

``resnet`` (ResNet-V1c with any stage blocks: PSPNet-38), ``efficientnet`` (EfficientNet-B1,
a re-implementation), ``espnet`` (ESPNet, a re-implementation) and ``mask2former`` (mmseg's
Mask2Former head with per-pixel logits for logit-based losses).
"""

from __future__ import annotations


def register_all() -> None:
    """Import every module here (each registers its classes in mmseg's ``MODELS``)."""
    import suite.nets.efficientnet  # noqa: F401
    import suite.nets.espnet  # noqa: F401
    import suite.nets.mask2former  # noqa: F401
    import suite.nets.resnet  # noqa: F401
