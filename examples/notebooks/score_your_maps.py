# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Score your own saliency maps with xaibench
#
# You have a trained model, a batch of images, their lesion masks and maps from your own
# method. `xaibench.score` gives per-sample scores by any registered metric, computed on
# the same path as `xaibench run` (same checks, seeds and draws). Here a small random CNN
# and random images stand in for yours. Open it with `jupytext --to ipynb` or run it as a script.

# %%
import torch

import xaibench

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2)).eval()
images = torch.rand(8, 1, 32, 32)                     # (N, C, H, W), as the model consumes them
masks = torch.zeros(8, 32, 32, dtype=torch.bool)      # (N, H, W) ground truth
masks[:, 8:20, 10:22] = True
maps = images[:, 0] * (1 + masks)                     # (N, H, W): your method's maps

# %% [markdown]
# Scores, one per sample and metric (`None` targets: explain the predicted class):

# %%
scores = xaibench.score(model, images, None, maps, ["hit-rate", "relevance-mass", "dic", "deletion-auc"],
                        masks=masks, params={"deletion-auc": {"steps": 16}})
scores  # noqa: B018 (a notebook cell shows its last value)

# %%
scores["relevance-mass"], scores.summary["hit-rate"]  # (N,) float64; (mean, CI low, CI high, n)

# %% [markdown]
# A metric as an object, with its spec as attributes:

# %%
road = xaibench.metric("road-morf", fractions=[0.1, 0.3, 0.5])
print(road.name, road.direction, road.category, "|", road.citation)
road(model, images, None, maps)

# %% [markdown]
# Any registered method's maps, as a suite computes them:

# %%
gradcam = xaibench.explain(model, images, method="gradcam", layer="0")
gradcam.shape  # noqa: B018

# %% [markdown]
# Run a built-in suite (`limit` keeps it fast; the CLI's options are keywords) and look at its results:

# %%
results = xaibench.run("quick", limit=4, store="xaibench-results/notebook.sqlite", progress=False)
results  # noqa: B018 (the leaderboard tables in Jupyter)

# %%
[(c.method, c.metric, c.mean) for c in results.cells if c.metric == "hit-rate"]
