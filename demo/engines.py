"""What the demo runs: the torch-free engines of ``rnnkit.edge.predict`` (shared with ``rnnkit predict``).

The inference itself lives in ``edge/predict.py`` (graphs, bundle loading), ``edge/predict_text.py``
(generation, sentiment, translation), ``edge/predict_tag.py`` (entities) and
``edge/predict_series.py`` (forecasts); the demo only wires them into its tabs.
"""

from rnnkit.edge.predict import (HEADLINE_METRICS, Graph, describe, piece_text)  # noqa: F401
from rnnkit.edge.predict_series import SeriesForecaster  # noqa: F401
from rnnkit.edge.predict_tag import EntityTagger  # noqa: F401
from rnnkit.edge.predict_text import (LENGTH_PENALTY, MAX_RUNNING_POINTS, MAX_TARGET_TOKENS,  # noqa: F401
                                      SentimentResult, SentimentScorer, TextGenerator, Translation, Translator)
