"""Training and dataset builders (issue 7): LoRA style fine-tuning of the caption generator and the data it
learns from; ``triplets`` builds the multi-image dataset."""
