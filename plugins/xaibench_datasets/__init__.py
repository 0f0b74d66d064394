"""Built-in datasets: embedded, generated offline, no download."""
