"""Location-supervised saliency (seed 002): a classifier with a saliency branch trained on the masks."""
