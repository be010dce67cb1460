"""The core layer: what every job needs before any stage runs, and nothing that knows about stages.

``core.cache`` (the content-addressed cache and the run's handle on it), ``core.files`` (atomic writes, folder
containment, hashing a file), ``core.folders`` (the checks on the folders a job is given) and ``core.images``
(opening a photo upright). Errors live in :mod:`photopoet.errors`. Layers, lowest first:
errors/config/records/core -> models, poetry, metrics -> stages -> executors -> pipeline ->
evaluation, train, web -> cli. A module never imports one above its own layer.
"""
