"""How good a model is, in numbers and figures: ``metrics`` (accuracy, F1, AUC ROC, the
confusion matrix and ROC curves of one split), ``figures`` (every figure emorec draws),
``report`` (the comparison report of every model and dataset) and ``cross_dataset``
(each dataset's champion on the others' test data)."""
