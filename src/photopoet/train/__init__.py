"""Training and dataset builders (issue 7): LoRA style fine-tuning of the caption generator and the data it
learns from, fine-tuning of the poem retriever, and ``triplets`` for the multi-image dataset. :mod:`.loop` holds
the loop helpers the trainers share (checkpoint folders swapped in whole, RNG states, Ctrl-C)."""
