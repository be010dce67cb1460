"""`photopoet serve`: a small web app to run photopoet and review its posts before anything goes out.

- :mod:`.state`: the review (OUT/review.json), saved atomically on every change;
- :mod:`.safety`: path checks for served files, upload checks, the CSRF token;
- :mod:`.jobs`: the one background job at a time (a run, a regeneration, an export) and its live progress;
- :mod:`.regen`: new captions, haiku and poems for one post through the pipeline's own writers;
- :mod:`.app`: the FastAPI app (server-rendered pages, a little plain JavaScript for progress): the host and
  origin checks, error pages, and the routers of :mod:`.routes` (pages, runs, edit, export, files);
- :mod:`.context`: what the routers share (settings, review store, jobs, templates), on ``app.state.web``;
- :mod:`.render`: writing the reviewed posts out with the render stage's functions (the export).
"""
