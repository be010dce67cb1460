"""Writing: captions with hashtags (templates, the style model, or the local generator with the template as its
fallback; :mod:`.texts`), haiku (:mod:`.haiku`) and a line of Chinese poetry (:mod:`.poem`) for each post."""

from photopoet.stages.write.template import hashtags_for, template_caption, write_templates

__all__ = ["hashtags_for", "template_caption", "write_templates"]
