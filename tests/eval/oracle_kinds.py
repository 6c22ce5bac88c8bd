"""Prints the scikit-learn values test_kinds.c asserts (regression and multiclass metrics of
fixed data). Run: /usr/bin/python3 tests/eval/oracle_kinds.py"""
import numpy as np
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

y = np.array([3.0, -1.5, 2.0, 7.0, 0.5, 4.25, 1.0, -2.0])
p = np.array([2.5, -1.0, 2.0, 8.0, 0.0, 4.0, 2.5, -1.0])
print("mae %.17g rmse %.17g r2 %.17g" % (mean_absolute_error(y, p), np.sqrt(mean_squared_error(y, p)), r2_score(y, p)))

lab = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
prob = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.3, 0.4], [0.4, 0.4, 0.2],
                 [0.5, 0.1, 0.4], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.3, 0.4, 0.3], [0.25, 0.25, 0.5]])
print("acc %.17g macro %.17g" % (accuracy_score(lab, prob.argmax(1)), roc_auc_score(lab, prob, multi_class="ovr", average="macro")))
print("per-class", " ".join("%.17g" % roc_auc_score(lab == k, prob[:, k]) for k in range(3)))
