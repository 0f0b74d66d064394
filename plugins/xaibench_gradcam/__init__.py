"""CAM-family saliency methods from pytorch-grad-cam."""
