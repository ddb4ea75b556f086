"""
Cross-validating HadaSmileClassifier
====================================

:class:`~hadasklearn.HadaSmileClassifier` is a scikit-learn classifier, so
:func:`~sklearn.model_selection.cross_validate` evaluates it like any other. Two things matter
for an honest estimate:

* the outer folds are grouped by subject (:class:`~sklearn.model_selection.StratifiedGroupKFold`);
* the classifier picks its best epoch on an *inner* validation split of the training fold. Passing
  the subject ids to ``fit`` as well (via metadata routing) makes that inner split subject-grouped
  too.

The network here is tiny and trained for a few epochs so that the example runs in seconds.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import sklearn
from sklearn.model_selection import StratifiedGroupKFold, cross_validate

from hadasklearn import DMarkerTransformer, HadaSmileClassifier
from hadasklearn.datasets import make_smiles

data = make_smiles(n_subjects=12, videos_per_subject=4, fps=25.0, random_state=1)

# %%
# The D-Markers do not depend on the training data, so they are computed once for all folds:
# ``passthrough=True`` returns a :class:`skorch.helper.SliceDict` holding both the landmarks and
# the D-Markers, which cross-validation slices like an array.
X = DMarkerTransformer(fps=data.fps, passthrough=True).fit_transform(data.X)
print(sorted(X.keys()), X["dmarkers"].shape)

# %%
# A small network: 32-wide streams, one transformer block, 8-frame clips; early stopping with a
# patience of 2 epochs (at most 3 epochs) on a 25 % inner validation split.
clf = HadaSmileClassifier(
    fusion="hadamard",
    dim=32,
    depth=1,
    clip_length=8,
    max_epochs=3,
    n_test_clips=2,
    early_stopping=2,
    validation_fraction=0.25,
    device="cpu",
    random_state=0,
)

# Route ``groups`` to both the splitter and ``HadaSmileClassifier.fit``. ``config_context`` keeps
# the setting local to this block.
with sklearn.config_context(enable_metadata_routing=True):
    clf.set_fit_request(groups=True)
    result = cross_validate(
        clf,
        X,
        data.y,
        cv=StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0),
        params={"groups": data.groups},
        return_estimator=True,
    )
print("accuracy per fold:", np.round(result["test_score"], 3))
print("epochs run per fold:", [est.n_epochs_ for est in result["estimator"]])
print("best epoch per fold:", [est.best_epoch_ for est in result["estimator"]])

# %%
# The training history of each fold (skorch's ``net_.history``): training loss and the loss on
# the inner validation split that chose the kept epoch.
fig, ax = plt.subplots(figsize=(5, 3))
for k, est in enumerate(result["estimator"]):
    history = est.net_.history
    epochs = history[:, "epoch"]
    ax.plot(epochs, history[:, "train_loss"], color=f"C{k}", label=f"fold {k} train")
    ax.plot(epochs, history[:, "valid_loss"], color=f"C{k}", linestyle="--", label=f"fold {k} inner valid")
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy")
ax.legend(fontsize="small", ncol=2)
fig.tight_layout()
plt.show()
