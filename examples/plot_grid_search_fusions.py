"""
Grid search over fusion strategies
==================================

The fusion strategy is an ordinary hyper-parameter of :class:`~hadasklearn.HadaSmileClassifier`,
so :class:`~sklearn.model_selection.GridSearchCV` compares fusions (and any other parameter) with
the usual API. ``hadasklearn.nn.list_fusions()`` lists all 15 registered fusions; three are
searched here to keep the example fast.

Every (fusion, fold) fit is independent: ``n_jobs`` runs them in parallel, and the same search runs
on a Dask cluster with ``joblib.parallel_backend("dask")`` (see :doc:`/scaling`).
"""

# %%
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from hadasklearn import DMarkerTransformer, HadaSmileClassifier
from hadasklearn.datasets import make_smiles
from hadasklearn.nn import list_fusions

print(f"{len(list_fusions())} registered fusions:", ", ".join(list_fusions()))

data = make_smiles(n_subjects=10, videos_per_subject=4, fps=25.0, random_state=2)
X = DMarkerTransformer(fps=data.fps, passthrough=True).fit_transform(data.X)

# %%
# A tiny network trained for 2 epochs without early stopping (so no inner split is needed), and a
# 2-fold subject-grouped CV. ``refit=False`` skips retraining the best fusion on all the data
# (the default ``refit=True`` would, and then ``search.predict`` uses it).
base = HadaSmileClassifier(dim=32, depth=1, clip_length=8, max_epochs=2, n_test_clips=2, early_stopping=False,
                           device="cpu", random_state=0)
search = GridSearchCV(
    base,
    {"fusion": ["hadamard", "concat", "film"]},
    cv=StratifiedGroupKFold(n_splits=2, shuffle=True, random_state=0),
    n_jobs=1,
    refit=False,
)
search.fit(X, data.y, groups=data.groups)

results = pd.DataFrame(search.cv_results_)[["param_fusion", "mean_test_score", "std_test_score", "mean_fit_time"]]
print(results.sort_values("mean_test_score", ascending=False).to_string(index=False))
print("best:", results.loc[results["mean_test_score"].idxmax(), "param_fusion"])

# %%
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(results["param_fusion"], results["mean_test_score"], yerr=results["std_test_score"], capsize=4)
ax.set_ylabel("mean CV accuracy")
ax.set_title("2-fold grouped CV, tiny network, 2 epochs")
fig.tight_layout()
plt.show()
