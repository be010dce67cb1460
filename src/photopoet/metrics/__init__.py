"""Evaluation metrics, one module per family; each evaluator returns a dict naming its primary metric.

- :mod:`~photopoet.metrics.text`: BLEU-1..4, ROUGE-L, CIDEr-D as pycocoevalcap computes them (PTB tokens).
- :mod:`~photopoet.metrics.clipscore`: CLIPScore / RefCLIPScore (Hessel et al. 2021) for a real CLIP.
- :mod:`~photopoet.metrics.retrieval`: NDCG, MRR, MAP, Recall, P at k as trec_eval computes them.
- :mod:`~photopoet.metrics.clustering`: ARI, NMI (scikit-learn), purity, silhouette.
- :mod:`~photopoet.metrics.duplicates`: pairwise precision / recall of duplicate groups per tier.

Importing this package is cheap: no model, no torch.
"""

from photopoet.metrics.clipscore import clip_s, ref_clip_s
from photopoet.metrics.clustering import clustering_scores
from photopoet.metrics.duplicates import components, duplicate_metrics, tier_confusion
from photopoet.metrics.retrieval import evaluate_run, query_metrics, ranked_metrics
from photopoet.metrics.text import bleu, cider, rouge_l, score_texts, text_metrics, tokenize

__all__ = [
    "bleu",
    "cider",
    "clip_s",
    "clustering_scores",
    "components",
    "duplicate_metrics",
    "evaluate_run",
    "query_metrics",
    "ranked_metrics",
    "ref_clip_s",
    "rouge_l",
    "score_texts",
    "text_metrics",
    "tier_confusion",
    "tokenize",
]
