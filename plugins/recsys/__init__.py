"""Built-in retrieval sources (ann, cooccurrence, popularity, content) and re-ranking rules of recommenders."""

from __future__ import annotations

from forgeml import hookimpl


@hookimpl
def forgeml_register_retrievers(register):
    """Offer the four built-in retrieval sources."""
    from forgeml.plugins.recsys import sources as s

    register("ann", s.AnnRetriever, settings=s.AnnSettings,
             description="nearest items to the user's embedding in an item-embedding table (LanceDB)")
    register("cooccurrence", s.CooccurrenceRetriever, settings=s.CooccurrenceSettings,
             description="items listed with the user's recent items in the online store (bought X, also bought Y)")
    register("popularity", s.PopularityRetriever, settings=s.PopularitySettings,
             description="the most popular items of a segment, a list kept in the online store")
    register("content", s.ContentRetriever, settings=s.ContentSettings,
             description="top items of the categories of the user's recent items")


@hookimpl
def forgeml_register_rerankers(register):
    """Offer the four built-in re-ranking rules."""
    from forgeml.plugins.recsys import rules as r

    register("suppress_purchased", r.SuppressPurchased, settings=r.SuppressSettings,
             description="drop items the user already bought")
    register("diversity", r.Diversity, settings=r.DiversitySettings,
             description="at most N items per category among the top of the list")
    register("sponsored", r.Sponsored, settings=r.SponsoredSettings,
             description="put the best sponsored items at fixed slots")
    register("freshness", r.Freshness, settings=r.FreshnessSettings,
             description="boost new items, halving the boost every half_life_days")
