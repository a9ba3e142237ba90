"""Scorecard modelling: a simulated population that defaults, datasets of point-in-time
features, fitting (optbinning), evaluation and the scorecard document's docs.

Offline tools: nothing here runs in the worker. ``population`` and ``dataset`` need only the
runtime dependencies; ``fit``, ``evaluate`` and ``report`` need the ``model`` extra (numpy,
pandas, scikit-learn, optbinning, matplotlib).
"""
