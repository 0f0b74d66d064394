"""Built-in evaluation metrics: each follows its paper's definition and cites it."""
