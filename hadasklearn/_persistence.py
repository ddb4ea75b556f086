"""Weights-only persistence of :class:`~hadasklearn.HadaSmileClassifier`: safetensors tensors + JSON, never pickle."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from .landmarks import LandmarkScheme

__all__ = ["load_weights", "save_weights"]

FORMAT = "hadasklearn.HadaSmileClassifier"
FORMAT_VERSION = 1
_METADATA_KEY = "hadasklearn"
_LABEL_KINDS = {"U", "i", "u", "f", "b"}


def _registered_name(spec, kind):
    """The registry name of a fusion/backbone given by name or class (classes must be registered)."""
    if isinstance(spec, str):
        return spec
    from .nn import get_backbone, get_fusion, list_backbones, list_fusions

    names = list_fusions(include_baselines=True) if kind == "fusion" else list_backbones()
    getter = get_fusion if kind == "fusion" else get_backbone
    for name in names:
        if getter(name) is spec:
            return name
    raise TypeError(
        f"save_weights stores the {kind} by its registered name, but {spec!r} is not registered; "
        f"register it (hadasklearn.nn.register_{kind}) or pickle the estimator instead."
    )


def _encode_params(estimator):
    params = estimator.get_params(deep=False)
    params.pop("callbacks")  # training-time objects; a loaded estimator predicts without them
    params["fusion"] = _registered_name(params["fusion"], "fusion")
    params["backbone"] = _registered_name(params["backbone"], "backbone")
    if isinstance(params["scheme"], LandmarkScheme):
        s = params["scheme"]
        params["scheme"] = {
            "name": s.name,
            "n_landmarks": s.n_landmarks,
            "points": [list(p) for p in s.points],
            "description": s.description,
        }
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None
    return params


def _decode_params(params):
    if isinstance(params["scheme"], dict):
        s = params["scheme"]
        params["scheme"] = LandmarkScheme(
            s["name"], s["n_landmarks"], tuple(tuple(p) for p in s["points"]), s["description"]
        )
    return params


def _encode_classes(classes):
    classes = np.asarray(classes)
    values = classes.tolist()
    ok = classes.dtype.kind in _LABEL_KINDS or (
        classes.dtype.kind == "O" and all(isinstance(v, (str, int, float, bool)) for v in values)
    )
    if not ok:
        raise TypeError(
            f"save_weights stores the class labels as JSON; labels of dtype {classes.dtype} "
            f"(e.g. {values[0]!r}) cannot be restored that way. Use str, int, float or bool labels, "
            "or pickle the estimator instead."
        )
    return {"values": values, "dtype": classes.dtype.str if classes.dtype.kind != "O" else "object"}


def save_weights(estimator, path):
    """Write ``estimator``'s network, D-Marker statistics and configuration to ``path`` atomically.

    See :meth:`HadaSmileClassifier.save_weights`.
    """
    from safetensors.torch import save_file

    check_is_fitted(estimator)
    path = Path(path)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "params": _encode_params(estimator),
        "classes": _encode_classes(estimator.classes_),
        "n_landmarks": int(estimator.n_landmarks_),
        "n_coords": int(estimator.n_coords_),
        "n_dmarkers": None if estimator.n_dmarkers_ is None else int(estimator.n_dmarkers_),
        "n_epochs": int(estimator.n_epochs_),
        "best_epoch": int(estimator.best_epoch_),
    }
    try:
        metadata = {_METADATA_KEY: json.dumps(config)}
    except TypeError as exc:
        raise TypeError(
            f"save_weights stores the estimator's parameters as JSON, but one is not JSON "
            f"serialisable ({exc}); check backbone_kwargs and fusion_kwargs."
        ) from exc
    tensors = {
        f"module.{name}": value.detach().to("cpu").contiguous().clone()
        for name, value in estimator.net_.module_.state_dict().items()
    }
    if estimator.dmarker_mean_ is not None:
        tensors["dmarker_mean"] = torch.from_numpy(np.ascontiguousarray(estimator.dmarker_mean_))
        tensors["dmarker_scale"] = torch.from_numpy(np.ascontiguousarray(estimator.dmarker_scale_))
    # Write next to the destination and rename: the rename is atomic, so readers never see a
    # half-written file and an interrupted save leaves the previous file intact.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_weights(cls, path, *, device="auto"):
    """Rebuild a fitted ``cls`` from a :func:`save_weights` file. See :meth:`HadaSmileClassifier.load_weights`."""
    from safetensors import safe_open

    from ._classifier import _resolve_device

    tensors = {}
    with safe_open(str(path), framework="pt", device="cpu") as f:
        metadata = f.metadata() or {}
        if _METADATA_KEY not in metadata:
            raise ValueError(
                f"{path} is not a HadaSmileClassifier weights file (no {_METADATA_KEY!r} metadata); "
                "write it with HadaSmileClassifier.save_weights."
            )
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    config = json.loads(metadata[_METADATA_KEY])
    if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} holds format {config.get('format')!r} version {config.get('format_version')!r}; "
            f"this hadasklearn reads {FORMAT!r} up to version {FORMAT_VERSION}."
        )
    params = _decode_params(config["params"])
    params["device"] = device
    estimator = cls(**params)
    estimator.device_ = _resolve_device(device)
    classes = config["classes"]
    estimator.classes_ = np.array(
        classes["values"], dtype=object if classes["dtype"] == "object" else np.dtype(classes["dtype"])
    )
    estimator.n_landmarks_ = config["n_landmarks"]
    estimator.n_coords_ = config["n_coords"]
    estimator.n_dmarkers_ = config["n_dmarkers"]
    estimator.n_epochs_ = config["n_epochs"]
    estimator.best_epoch_ = config["best_epoch"]
    if "dmarker_mean" in tensors:
        estimator.dmarker_mean_ = tensors["dmarker_mean"].numpy()
        estimator.dmarker_scale_ = tensors["dmarker_scale"].numpy()
    else:
        estimator.dmarker_mean_ = estimator.dmarker_scale_ = None
    module = estimator._build_module(len(estimator.classes_), estimator.n_dmarkers_)
    state = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
    module.load_state_dict(state, strict=True)
    estimator.net_ = estimator._make_net(module, None, None, n_train=1)
    estimator.net_.initialize()
    estimator.net_.module_.eval()
    return estimator
