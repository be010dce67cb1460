"""Pipeline stages: each a plain function (or a small class holding a model) from records to records."""
