"""Training: fine-tuning the poem retriever (:mod:`photopoet.train.retriever`)."""
