"""Training: style fine-tuning of the caption generator (LoRA), and the data it learns from."""
