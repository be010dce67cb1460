"""Pipeline stages: each a plain function (or a small class holding a model) from records to records.

The stage functions `pipeline.run` calls share one shape, ``stage(records, cfg.<section>, cache, *, ...,
progress) -> result``: :func:`.ingest.ingest`, :func:`.understand.understand`, :func:`.scene.describe_scenes`,
:func:`.cull.cull`, :func:`.group.group_understood`, :func:`.write.texts.write_texts`,
:func:`.write.poem.write_poems` and :func:`.render.render`. What a stage needs beyond its own section and the
cache is keyword-only, and its docstring says why.
"""
