"""The review app's routers, one per concern; :func:`photopoet.web.app.create_app` includes them all.

- :mod:`.pages`: the pages (start, progress, review) and the status the progress page polls;
- :mod:`.runs`: starting a run on a folder or on uploaded photos, adopting an earlier run, a changed posts.json;
- :mod:`.edit`: the editor's changes to posts, and regenerating a caption, haiku or poem;
- :mod:`.export`: writing the reviewed posts out;
- :mod:`.files`: thumbnails and the photo and output files.
"""
