"""Writing: captions with hashtags (template now; generative and hybrid later), haiku, Chinese poetry."""

from photopoet.stages.write.template import hashtags_for, template_caption, write_templates

__all__ = ["hashtags_for", "template_caption", "write_templates"]
