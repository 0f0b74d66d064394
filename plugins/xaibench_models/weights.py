"""The published weights of the torchvision architectures, named without importing torch or torchvision."""
from __future__ import annotations

#: torchvision's ImageNet weights (``IMAGENET1K_V1``, the release the seeds' studies used) of each architecture:
#: the URLs of its weights enums (``torchvision.models.get_weight("ResNet18_Weights.IMAGENET1K_V1").url`` ...),
#: pinned here so that registering the models imports no torchvision (tests check they equal torchvision's).
IMAGENET = {name: f"https://download.pytorch.org/models/{name}-{sha}.pth" for name, sha in (
    ("resnet18", "f37072fd"), ("resnet50", "0676ba61"), ("resnet101", "63fe2227"), ("densenet121", "a639ec97"),
    ("densenet201", "c1103571"), ("googlenet", "1378be20"), ("mobilenet_v2", "b0353104"), ("vgg16", "397923af"))}

#: The classification layer of each architecture, re-initialised for the dataset's classes when fine-tuning
#: (VGG-16's ``head: gap`` has a single linear ``classifier``).
HEADS = {"resnet": ("fc",), "densenet": ("classifier",), "googlenet": ("fc",), "mobilenet_v2": ("classifier.1",),
         "vgg": ("classifier.6", "classifier.weight", "classifier.bias")}

#: Keys of the published files a built model may lack: GoogLeNet's auxiliary heads (built without them here) and
#: VGG-16's fully connected layers (absent with ``head: gap``).
UNUSED = {"googlenet": ("aux1", "aux2"), "vgg": ("classifier.0", "classifier.3")}
