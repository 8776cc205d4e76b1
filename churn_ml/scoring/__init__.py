"""The compiled scorers: the trained model as plain arrays, for the request path.

A fitted sklearn Pipeline with a ColumnTransformer spends ~9 ms of CPU on one row, almost all of
it in per-call validation and DataFrame plumbing. :func:`compile_pipeline` turns the trained
pipeline into plain numbers once, after training, and the scorer then needs only numpy (batches)
or pure Python (one record):

* :class:`LinearScorer` (logistic regression, the chosen family): every step of the pipeline is
  affine, so it folds into one linear function of the engineered features. The StandardScaler
  is folded into the coefficients (w = coef / scale), and the sigmoid calibration
  p = expit(-(a f + b)) into them as well (w' = -a w, intercept' = -(a c + b)), so the
  calibrated logit is ``intercept + sum(table[field][category]) + sum(w_j x_j)``. Each
  enumeration becomes an encoding table (canonical value -> its summed one-hot weight; unknown
  -> 0, as OneHotEncoder(handle_unknown="ignore") gives all-zero columns).
* :class:`TreeEnsembleScorer` (HistGradientBoosting, the alternative family): the trees as flat
  node arrays walked level by level for all rows and trees at once, plus the same sigmoid.

Explanations: one :class:`Factor` per factor group of :data:`churn_ml.features.FACTOR_GROUPS`
(a contract field, or coupled fields such as tenure and charges to date). Its impact, in
calibrated logit units, is ``logit(x) - logit(x')`` where x' is the customer with the group's
fields set to the reference customer's values and every feature recomputed from them
(:meth:`FeatureBuilder.move_record`): positive means this customer's values raise the risk
above what the reference's would give. Only the features a group feeds change, so the linear
scorer sums the weight differences of those features alone and the tree scorer re-walks only
the trees that split on them.

The impacts add up to ``logit(x) - logit(reference)`` for a model without interactions between
groups. The logistic model has two (month-to-month x log tenure, fiber x log tenure), each
leaving ``w (g(x) - g(ref)) (h(x) - h(ref))``; boosting leaves whatever interactions its trees
learnt. The sign of each factor is exact either way.

Both scorers serialise to plain JSON-able dicts (:meth:`to_dict`, :func:`scorer_from_dict`) so a
model artifact needs no pickle on the request path.

Where each part lives:

* :mod:`.protocol`: the ``Scorer`` protocol, the logistic function, the JSON header;
* :mod:`.factors`: ``Factor``, ``Contributions``, the top factors of a row;
* :mod:`.linear`: ``LinearScorer``;
* :mod:`.trees`: ``TreeEnsembleScorer``;
* :mod:`.compiler`: ``compile_pipeline`` (after training) and ``scorer_from_dict`` (from an artifact).
"""
