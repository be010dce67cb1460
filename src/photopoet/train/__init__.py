"""Training and dataset builders (issue 7): ``triplets`` builds the multi-image dataset."""
