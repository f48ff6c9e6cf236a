"""Two-stage recommendation: retrieval sources, ranking, re-ranking rules, embedding tables and offline metrics."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".merging": ["merge"],
    ".pipeline": ["Recommendation", "Recommender"],
    ".settings": ["RecommenderSettings"],
    "forgeml.feedback.interleaving": ["Interleaved", "InterleavingTally", "team_draft"],
    ".embeddings": ["EmbeddingTable", "add_cold_items", "publish_embeddings", "registered_table"],
    ".metrics": ["average_precision_at_k", "catalogue_coverage", "evaluate", "intra_list_diversity", "ndcg_at_k",
                 "recall_at_k", "reciprocal_rank"],
})
