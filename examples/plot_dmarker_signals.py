"""
D-Marker signals and smile phases
=================================

The D-Markers summarise three amplitude signals per video: the lip-corner displacement
:math:`D_{lip}`, the eyelid opening :math:`D_{eyelid}` and the cheek displacement
:math:`D_{cheek}` (definitions in the :doc:`/user_guide`). The smile's onset, apex and offset are
found on :math:`D_{lip}` of the whole video (:func:`~hadasklearn.smile_phases`) and the same frame
ranges are used for all three regions.

This example draws them for one genuine and one posed synthetic smile of the same subject.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from hadasklearn import amplitude_signals, smile_phases
from hadasklearn.datasets import make_smiles

data = make_smiles(n_subjects=1, videos_per_subject=2, fps=50.0, random_state=3)
names = data.target_names[data.y]
print(list(zip(data.names, names)))

# %%
# Amplitude signals (padded to the longest video) and the phase boundaries
# ``[onset_start, apex_start, offset_start, offset_stop]`` of each video.
signals = amplitude_signals(data.X)
bounds = smile_phases(signals.lip, signals.lengths)
for name, b in zip(names, bounds):
    print(f"{name:8s} onset {b[0]}-{b[1]}, apex {b[1]}-{b[2]}, offset {b[2]}-{b[3]} (frames)")

# %%
# One column per video; the shaded bands are the onset (green), apex (yellow) and offset (red).
regions = ["lip", "eyelid", "cheek"]
fig, axes = plt.subplots(len(regions), 2, figsize=(8, 6), sharex="col", sharey="row")
for col, (name, b, n) in enumerate(zip(names, bounds, signals.lengths)):
    t = np.arange(n) / data.fps
    for row, region in enumerate(regions):
        ax = axes[row, col]
        ax.plot(t, getattr(signals, region)[col, :n], color="k", lw=1.2, label="both sides")
        ax.plot(t, getattr(signals, f"{region}_right")[col, :n], lw=0.8, label="right")
        ax.plot(t, getattr(signals, f"{region}_left")[col, :n], lw=0.8, label="left")
        for (start, stop), color in zip([(b[0], b[1]), (b[1], b[2]), (b[2], b[3])], ["tab:green", "gold", "tab:red"]):
            ax.axvspan(start / data.fps, stop / data.fps, color=color, alpha=0.15, lw=0)
        if col == 0:
            ax.set_ylabel(f"$D_{{{region}}}$")
    axes[0, col].set_title(f"{name} smile")
    axes[-1, col].set_xlabel("time (s)")
axes[0, 0].legend(fontsize="small")
fig.tight_layout()
plt.show()
