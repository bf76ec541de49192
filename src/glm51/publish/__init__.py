"""Card and publish: the model card from the recipe and records, and the Hub upload."""
