"""
Is a method significantly better? The significance table
========================================================

Cross-validation fold scores are not independent (the training sets overlap), so a plain paired
t-test over folds is over-confident. :func:`~hadasklearn.stats.compare_to_reference` compares
every method with a reference on the *same* folds with the corrected resampled t-test of Nadeau &
Bengio (2003) and the Wilcoxon signed-rank test, and corrects the p-values for the number of
comparisons (Holm). ``hadasklearn benchmark`` writes this table for the whole fusion study.

Here three methods are compared on 3 subject-grouped folds: HadaSmileNet with the Hadamard
fusion (reference), the same network with concatenation, and the D-Marker + SVM pipeline.
"""

# %%
from sklearn.model_selection import StratifiedGroupKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from hadasklearn import DMarkerTransformer, HadaSmileClassifier
from hadasklearn.datasets import make_smiles
from hadasklearn.stats import compare_to_reference, fold_scores_from_cv

data = make_smiles(n_subjects=10, videos_per_subject=4, fps=25.0, random_state=4)
X = DMarkerTransformer(fps=data.fps, passthrough=True).fit_transform(data.X)

# %%
# One splitter with a fixed seed, so every method sees exactly the same folds;
# ``return_indices=True`` lets :func:`~hadasklearn.stats.fold_scores_from_cv` check that and
# record the fold sizes the corrected t-test needs.
cv = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0)
net = dict(dim=32, depth=1, clip_length=8, max_epochs=2, n_test_clips=2, early_stopping=False,
           device="cpu", random_state=0)
methods = {
    "hadamard": (HadaSmileClassifier(fusion="hadamard", **net), X),
    "concat": (HadaSmileClassifier(fusion="concat", **net), X),
    "dmarker_svm": (make_pipeline(StandardScaler(), SVC()), X["dmarkers"]),
}
results = {
    name: cross_validate(est, features, data.y, groups=data.groups, cv=cv, return_indices=True)
    for name, (est, features) in methods.items()
}
fold_scores = fold_scores_from_cv(results)
print(fold_scores.pivot(index="fold", columns="method", values="score").round(3))

# %%
# The table: mean and standard deviation over folds, the difference to the reference, its effect
# size, raw and Holm-corrected p-values. With 3 folds the smallest possible two-sided Wilcoxon
# p-value is 0.25, and a tiny network trained for 2 epochs is far from converged: expect no
# significant difference here.
table = compare_to_reference(fold_scores, reference="hadamard", score="score")
columns = ["method", "mean", "std", "mean_difference", "effect_size", "ttest_pvalue", "ttest_pvalue_holm",
           "wilcoxon_pvalue_holm", "significant"]
print(table[columns].round(3).to_string(index=False))
