"""One weights loader for every network that has weights (architecture decision 4).

A ``weights`` setting is one of

* ``pretrained`` — the library's own hub weights: timm's through the Hugging Face cache,
  torchvision's (VGG16, AlexNet, FID's Inception) through torch.hub's checkpoint folder. When the
  file is neither cached nor downloadable (``HF_HUB_OFFLINE``, or the host does not answer within
  a few seconds), loading stops with one line naming the other two options. The reachability
  probe is a TCP connect in a thread with its own timeout: no process-wide socket setting.
* a local file — ``.safetensors`` or a torch checkpoint (a ``state_dict``/``model``/``module``
  wrapper is unwrapped by :func:`unwrap_state_dict`); a file of another architecture is refused
  with the name of the first mismatched tensor;
* ``random`` — the library's initialisation under a fixed seed; results say they are untrained.

Every loader returns the weights *identity* next to the network, for results to record:
``hub:<repo or file>[@<revision>]``, ``sha256:<hex of the file>`` or ``random:<seed>``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reconlab.io import sha256_file

HUB_HOST = "huggingface.co"
TORCH_HOST = "download.pytorch.org"
PRETRAINED, RANDOM = "pretrained", "random"
_WRAPPERS = ("state_dict", "model", "module")
# FID's Inception (torch-fidelity / torchmetrics): the TF 2015-12-05 graph converted to PyTorch.
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)


def random_identity(seed: int) -> str:
    """Identity of seeded random initialisation: ``random:<seed>``."""
    return f"random:{seed}"


def file_identity(path: str | Path) -> str:
    """Identity of a weights file: ``sha256:<64 hex digits of its bytes>``."""
    return f"sha256:{sha256_file(Path(path))}"


def is_untrained(identity: str) -> bool:
    """Whether results computed with weights of ``identity`` come from random initialisation."""
    return identity.startswith(RANDOM)


def weights_file(weights: str | Path, key: str) -> Path:
    """``weights`` as an existing file; FileNotFoundError naming ``key`` and the path otherwise."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{key}: {str(weights)!r} is neither 'pretrained', 'random' nor an existing file"
        )
    return path


def unwrap_state_dict(state: Any) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: unwraps ``state_dict`` / ``model`` / ``module``
    (as Lightning, timm's train script and DataParallel save them), then keeps tensors only."""
    while isinstance(state, Mapping):
        inner = next((state[w] for w in _WRAPPERS if isinstance(state.get(w), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping):
        return {}
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_state_dict(path: str | Path, key: str) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a torch checkpoint, unwrapped, on the CPU.

    Raises:
        FileNotFoundError: the file does not exist (message names ``key`` and the path).
        ValueError: it is not a weights file, or holds no tensors (same).
    """
    path = weights_file(path, key)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line message
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{key}: {path} is not a torch state dict ({why})") from None
    tensors = unwrap_state_dict(state)
    if not tensors:
        raise ValueError(f"{key}: {path} is not a torch state dict (no tensors in it)")
    return tensors


def state_shapes(path: str | Path, key: str) -> dict[str, list[int]]:
    """Tensor name -> shape of a weights file; safetensors files are read from the header only."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    return {k: list(v.shape) for k, v in load_state_dict(path, key).items()}


def first_mismatch(
    want: Mapping[str, list[int]], have: Mapping[str, list[int]], resampled: tuple[str, ...] = ()
) -> str | None:
    """The first tensor where a file (``have``) and a model (``want``) disagree, in words.

    ``resampled`` names tensors whose shape the loader adapts itself (timm's ``pos_embed``).
    """
    for name, shape in want.items():
        if name not in have:
            return f"tensor {name!r} {list(shape)} is missing from the file"
    for name in have:
        if name not in want:
            return f"tensor {name!r} in the file is not part of the model"
    for name, shape in want.items():
        if list(have[name]) != list(shape) and name not in resampled:
            return (
                f"tensor {name!r} is {list(have[name])} in the file, the model needs {list(shape)}"
            )
    return None


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], key: str, source: Any) -> None:
    """``module.load_state_dict(state)`` (strict); ValueError naming ``key``, ``source`` and the
    first mismatched tensor when the architectures differ."""
    want = {k: list(v.shape) for k, v in module.state_dict().items()}
    why = first_mismatch(want, {k: list(v.shape) for k, v in state.items()})
    if why:
        raise ValueError(f"{key}: {source} does not fit {type(module).__name__}: {why}")
    module.load_state_dict(state)


def hub_reachable(host: str = HUB_HOST, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host``:443 opens within ``timeout`` seconds (DNS included).

    The probe runs in a daemon thread joined with ``timeout`` because ``getaddrinfo`` ignores
    socket timeouts; nothing process-wide is changed.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hf_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network (read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def require_download(what: str, host: str, key: str) -> None:
    """Raise RuntimeError (one line, naming ``key`` and the alternatives) unless ``host`` answers.

    Called before a download of pretrained weights that are not cached, so that no network (or
    ``HF_HUB_OFFLINE``) fails within seconds instead of after a library's retries.
    """
    if hf_offline() or not hub_reachable(host):
        raise RuntimeError(
            f"{key}: 'pretrained' needs {what} from {host}, which is unreachable "
            "(or HF_HUB_OFFLINE is set) and not in the local cache; set weights to a local "
            "checkpoint file (a path) or to 'random' (seeded, marked untrained), "
            "e.g. --configfile config/offline.yaml"
        )


def torch_hub_file(url: str, key: str) -> Path:
    """Local path of ``url`` in torch.hub's checkpoint folder, downloaded if reachable."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not path.is_file():
        require_download(path.name, url.split("/")[2], key)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=False)
    return path


def torchvision_url(arch: str) -> str:
    """URL of torchvision's default ImageNet weights of ``arch`` (``alexnet``, ``vgg16``, ...)."""
    from torchvision.models import get_model_weights

    return get_model_weights(arch).DEFAULT.url


def torchvision_state(arch: str, weights: str, key: str) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, identity) of torchvision-format weights: ``pretrained`` or a file."""
    if weights == PRETRAINED:
        path = torch_hub_file(torchvision_url(arch), key)
        return load_state_dict(path, key), f"hub:{path.name}"
    path = weights_file(weights, key)
    return load_state_dict(path, key), file_identity(path)


def create_torchvision_model(
    arch: str, weights: str, key: str, seed: int = 0, **model_kwargs: Any
) -> tuple[nn.Module, str]:
    """torchvision model ``arch`` (eval mode) with ``weights``, and its identity."""
    from torchvision.models import get_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_model(arch, weights=None, **model_kwargs)
    if weights == RANDOM:
        return model.eval(), random_identity(seed)
    state, identity = torchvision_state(arch, weights, key)
    load_into(model, state, key, weights)
    return model.eval(), identity


_HUB_DIR_LOCK = threading.Lock()


@contextlib.contextmanager
def torchvision_weights_as_pretrained(
    arch: str, weights: str, key: str, seed: int = 0
) -> Iterator[str]:
    """Within the block, torchvision's *pretrained* ``arch`` weights are ``weights``; yields the
    identity.

    For libraries whose public API only asks torchvision for its default ImageNet weights
    (torchmetrics' ``LearnedPerceptualImagePatchSimilarity``): torchvision reads them from
    torch.hub's checkpoint folder, so for a file or ``random`` that folder is, for the block
    only (under a lock), a temporary one holding them under torchvision's file name.
    ``pretrained`` leaves torch.hub alone after making sure the file is cached.
    """
    url = torchvision_url(arch)
    if weights == PRETRAINED:
        yield f"hub:{torch_hub_file(url, key).name}"
        return
    from torchvision.models import get_model

    with torch.device("meta"):
        want = {k: list(v.shape) for k, v in get_model(arch, weights=None).state_dict().items()}
    if weights == RANDOM:
        model, identity = create_torchvision_model(arch, RANDOM, key, seed)
        state = model.state_dict()
    else:
        path = weights_file(weights, key)
        state, identity = load_state_dict(path, key), file_identity(path)
        why = first_mismatch(want, {k: list(v.shape) for k, v in state.items()})
        if why:
            raise ValueError(f"{key}: {path} does not fit torchvision's {arch}: {why}")
    with _HUB_DIR_LOCK, tempfile.TemporaryDirectory(prefix="reconlab-hub-") as tmp:
        _save_state(state, Path(tmp) / "checkpoints" / Path(url).name)
        previous = torch.hub.get_dir()
        torch.hub.set_dir(tmp)
        try:
            yield identity
        finally:
            torch.hub.set_dir(previous)


def inception_weights_file(
    weights: str, workdir: str | Path, key: str, seed: int = 0
) -> tuple[Path, str]:
    """(file, identity) for FID's Inception: ``FrechetInceptionDistance(
    feature_extractor_weights_path=str(file))`` in torchmetrics (torch-fidelity's InceptionV3).

    ``random`` writes a seeded initialisation (torchvision's Inception v3 with 1008 classes and no
    auxiliary head has exactly torch-fidelity's tensors; PyTorch's default layer init, as
    torchvision's truncated-normal init takes seconds) to ``workdir``; a file is checked against
    that architecture, and rewritten to ``workdir`` as a plain state dict when it is a
    safetensors file or a wrapped checkpoint (torch-fidelity loads it strictly with torch.load).
    """
    if weights == PRETRAINED:
        path = torch_hub_file(INCEPTION_URL, key)
        return path, f"hub:{path.name}"
    workdir = Path(workdir)
    if weights == RANDOM:
        model, identity = create_torchvision_model(
            "inception_v3",
            RANDOM,
            key,
            seed,
            num_classes=1008,
            aux_logits=False,
            init_weights=False,
        )
        return _save_state(model.state_dict(), workdir / f"inception-random-{seed}.pth"), identity
    path = weights_file(weights, key)
    state = load_state_dict(path, key)
    with torch.device("meta"):
        from torchvision.models import inception_v3

        reference = inception_v3(
            weights=None, num_classes=1008, aux_logits=False, init_weights=False
        )
    want = {k: list(v.shape) for k, v in reference.state_dict().items()}
    why = first_mismatch(want, {k: list(v.shape) for k, v in state.items()})
    if why:
        raise ValueError(f"{key}: {path} does not fit FID's InceptionV3: {why}")
    identity = file_identity(path)
    plain = path.suffix != ".safetensors" and set(
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    ) == set(state)
    if not plain:  # torch-fidelity wants a plain torch state dict
        path = _save_state(state, workdir / f"inception-{identity[7:23]}.pth")
    return path, identity


def _save_state(state: Mapping[str, torch.Tensor], path: Path) -> Path:
    """Write ``state`` with torch.save to a temporary name, then rename (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, path)
    return path


def _cached_hf_file(cfg: Mapping[str, Any]) -> tuple[Path, str] | None:
    """(local path, revision) of a timm model's hub weights in the Hugging Face cache, if there."""
    from huggingface_hub import try_to_load_from_cache

    repo = cfg.get("hf_hub_id")
    if not repo:
        return None
    for filename in (cfg.get("hf_hub_filename"), "model.safetensors", "pytorch_model.bin"):
        if not filename:
            continue
        # HF_HUB_CACHE read now (not at import), so a cache set up later is found.
        path = try_to_load_from_cache(repo, filename, cache_dir=os.environ.get("HF_HUB_CACHE"))
        if isinstance(path, str):
            return Path(path), Path(path).parent.name  # .../snapshots/<revision>/<file>
    return None


def create_timm_model(
    name: str, weights: str, key: str, seed: int = 0, **model_kwargs: Any
) -> tuple[nn.Module, str]:
    """timm model ``name`` (eval mode) with ``weights``, and its identity.

    A file goes through timm's ``pretrained_cfg_overlay=dict(file=...)``, so official checkpoints
    are converted by timm (key renames, position-embedding resampling); ``model_kwargs`` go to
    ``timm.create_model`` (``img_size``, ``num_classes``, ``depth=2`` in tests).
    """
    import timm

    if weights == RANDOM:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(name, pretrained=False, **model_kwargs)
        return model.eval(), random_identity(seed)
    if weights != PRETRAINED:
        path = weights_file(weights, key)
        return _timm_from_file(name, path, key, **model_kwargs), file_identity(path)
    cfg = timm.models.get_pretrained_cfg(name)
    cfg = cfg.to_dict() if cfg is not None else {}
    repo = cfg.get("hf_hub_id") or name
    cached = _cached_hf_file(cfg)
    if cached is None:
        require_download(repo, HUB_HOST, key)
        model = timm.create_model(name, pretrained=True, **model_kwargs).eval()
        cached = _cached_hf_file(cfg)
        return model, f"hub:{repo}@{cached[1]}" if cached else f"hub:{repo}"
    # No network needed: load the cached file through timm's converter.
    return _timm_from_file(name, cached[0], key, **model_kwargs), f"hub:{repo}@{cached[1]}"


def _timm_from_file(name: str, path: Path, key: str, **model_kwargs: Any) -> nn.Module:
    import timm

    overlay = dict(file=str(path))
    try:
        model = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=overlay, **model_kwargs
        )
    except Exception as e:  # timm raises RuntimeError, KeyError, shape errors... depending on model
        with torch.device("meta"):  # only the shapes are needed
            reference = timm.create_model(name, pretrained=False, **model_kwargs)
        want = {k: list(v.shape) for k, v in reference.state_dict().items()}
        try:
            why = first_mismatch(want, state_shapes(path, key), resampled=("pos_embed",))
        except Exception:  # noqa: BLE001 - an unreadable file: timm's own message says more
            why = None
        why = why or str(e).strip().splitlines()[0]
        raise ValueError(f"{key}: {path} does not fit {name}: {why}") from None
    return model.eval()
