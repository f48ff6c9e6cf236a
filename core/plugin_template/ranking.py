"""Templates for what ranks items: recommender retrieval sources and re-ranking rules, and active-learning query
strategies."""

from __future__ import annotations

RANKING: dict[str, dict[str, str]] = {
    "retriever": {
        "suite": "RetrieverSuite",
        "description": "A retrieval source: the items of a JSON file of item scores, best first (editorial picks).",
        "selection": "    [serving.recommenders.shop]\n    sources = [{{ source = \"{name}\", path = \"picks.json\" }}]",
        "imports": "import json\nfrom pathlib import Path",
        "plugin": '''from forgeml.errors import ConfigError


@dataclass
class Settings:
    """Settings of the {name} retrieval source."""

    path: str = setting("picks.json", "JSON file mapping each item to its score, relative to the workspace root.")


class {cls}:
    """Returns the highest-scored items of a fixed list, for every user (a cold-start source)."""

    name = "{name}"

    def __init__(self, settings: Settings, workspace: Any = None):
        path = Path(settings.path)
        root = getattr(workspace, "root", None)
        path = path if path.is_absolute() or root is None else Path(root) / path
        try:
            scores = json.loads(path.read_text())
            # best first; equal scores in item order, so the answer never depends on the file's order
            self.items = sorted(((item, float(score)) for item, score in scores.items()),
                                key=lambda pair: (-pair[1], str(pair[0])))
        except (OSError, ValueError, AttributeError, TypeError) as e:
            raise ConfigError(f"{name} source: {{path}} is not a JSON object of item scores: {{e}}") from e

    def retrieve(self, query: Any, k: int) -> list[tuple[Any, float]]:
        """Return up to k (item, score) pairs the query does not exclude, highest score first."""
        exclude = set(query.exclude)
        return [(item, score) for item, score in self.items if item not in exclude][:k]


@hookimpl
def forgeml_register_retrievers(register):
    """Offer the {name} retrieval source."""
    register("{name}", {cls}, settings=Settings, description="items of a JSON file of scores, best first")
''',
        "test": '''import json

import pytest

from forgeml.contracts import RecommendQuery
from forgeml.testing import RetrieverSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(RetrieverSuite):
    @pytest.fixture
    def case(self, tmp_path):
        path = tmp_path / "picks.json"
        path.write_text(json.dumps({{"lamp": 0.9, "desk": 0.7, "chair": 0.7, "rug": 0.2, "vase": 0.1}}))
        return {cls}(Settings(path=str(path))), RecommendQuery(user="u1", recent=["sofa"])
''',
    },
    "reranker": {
        "suite": "RerankerSuite",
        "description": "A re-ranking rule: lower the score of items the user looked at lately, then re-sort.",
        "selection": "    [serving.recommenders.shop]\n    rerank = [{{ rule = \"{name}\", factor = 0.5 }}]",
        "imports": "import dataclasses",
        "plugin": '''from forgeml.errors import ConfigError


@dataclass
class Settings:
    """Settings of the {name} rule."""

    factor: float = setting(0.5, "What the score of a recently seen item is multiplied by (0 to 1).")


class {cls}:
    """Multiplies the score of candidates among the user's recent items by ``factor`` and sorts again."""

    name = "{name}"

    def __init__(self, settings: Settings | None = None, workspace: Any = None):
        self.factor = (settings or Settings()).factor
        if not 0.0 <= self.factor <= 1.0:
            raise ConfigError(f"{name} rule: factor must be between 0 and 1, got {{self.factor}}")

    def rerank(self, query: Any, candidates: list[Any]) -> list[Any]:
        """Return new candidates, recently seen ones demoted; the input list and its candidates stay as they were."""
        recent = set(query.recent)
        out = [dataclasses.replace(c, score=c.score * self.factor) if c.item in recent else c for c in candidates]
        return sorted(out, key=lambda c: -c.score)  # a stable sort: ties keep their order


@hookimpl
def forgeml_register_rerankers(register):
    """Offer the {name} rule."""
    register("{name}", {cls}, settings=Settings, description="demote items the user looked at lately")
''',
        "test": '''import pytest

from forgeml.contracts import Candidate, RecommendQuery
from forgeml.testing import RerankerSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(RerankerSuite):
    @pytest.fixture
    def case(self):
        candidates = [Candidate("lamp", 0.9, "picks"), Candidate("desk", 0.8, "picks"), Candidate("rug", 0.5, "picks")]
        return {cls}(Settings(factor=0.5)), RecommendQuery(user="u1", recent=["lamp"]), candidates
''',
    },
    "query_strategy": {
        "suite": "QueryStrategySuite",
        "description": "An active-learning query strategy: the smallest margin between the two likeliest classes.",
        "selection": "    forgeml label next LABEL_SET --strategy {name}",
        "imports": "",
        "plugin": '''from forgeml.errors import ValidationError


class {cls}:
    """Picks the rows whose two likeliest classes are closest; ties are broken by a seeded shuffle."""

    name = "{name}"

    def __init__(self, settings: Any = None, workspace: Any = None):
        pass

    def select(self, probabilities: Any, n: int, embeddings: Any = None, seed: int = 0) -> list[int]:
        """Return the row indices of the n rows with the smallest top-two margin, smallest first."""
        import numpy as np

        p = np.asarray(probabilities, dtype=float)
        if p.ndim != 2 or p.shape[1] < 2:
            raise ValidationError(f"{name}: probabilities must be (rows, classes) with 2+ classes, got {{p.shape}}")
        if embeddings is not None and len(embeddings) != len(p):
            raise ValidationError(f"{name}: {{len(embeddings)}} embeddings for {{len(p)}} rows")
        top = np.sort(p, axis=1)
        margin = top[:, -1] - top[:, -2]
        shuffle = np.random.default_rng(seed).permutation(len(p))
        order = np.lexsort((shuffle, margin))  # margin first; the shuffle only orders equal margins
        return [int(i) for i in order[:max(0, min(n, len(p)))]]


@hookimpl
def forgeml_register_query_strategies(register):
    """Offer the {name} strategy."""
    register("{name}", {cls}, description="smallest margin between the two likeliest classes")
''',
        "test": '''import pytest

from forgeml.testing import QueryStrategySuite
from {package}.plugin import {cls}


class Test{cls}(QueryStrategySuite):
    @pytest.fixture
    def strategy(self):
        return {cls}()
''',
    },
}
