"""Where the renderer's forward pass runs (`--backend auto|torch|openvino`).

    torch      PyTorch, on a CPU or a GPU: channels_last, bf16 autocast where chosen
    openvino   Intel's OpenVINO runtime, on a CPU (Intel or AMD): the PyTorch model converted
               in memory (once per process) and compiled when a pipeline starts, fp32 or bf16
               as chosen
    auto       openvino on a CPU when the package is installed and its output agrees with
               PyTorch's, torch otherwise (and always on a GPU)

Both run `Renderer.forward(source, reference_features)`; the reference features are computed
once per avatar by PyTorch. Before an OpenVINO model is used, its output on one input is
compared with PyTorch's fp32 output: a conversion that computes something else is never
used silently (auto falls back to torch, an explicit `--backend openvino` stops).
"""

from __future__ import annotations

import hashlib
import sys
import threading

import numpy as np
import torch

from ..errors import DhliveError
from .model import SOURCE_CHANNELS, Renderer

BACKENDS = ("auto", "torch", "openvino")
MIN_AGREEMENT_DB = 40.0  # PSNR of a runtime's output against PyTorch fp32 on the check input


def import_openvino():
    """The openvino module, with its usage reports off: dhlive sends nothing anywhere. (Importing
    openvino reports to Intel through openvino_telemetry unless that package cannot be imported;
    openvino then uses its own stub.)"""
    sys.modules.setdefault("openvino_telemetry", None)
    import openvino

    return openvino


class TorchRenderer:
    """The renderer run by PyTorch."""

    name = "torch"

    def __init__(self, model: Renderer, reference_features: torch.Tensor, dtype: torch.dtype):
        self.model, self.reference_features, self.dtype = model, reference_features, dtype
        self.device = reference_features.device

    @torch.inference_mode()
    def __call__(self, source: torch.Tensor) -> torch.Tensor:
        """(B, 7, R, R) source -> (B, 3, R, R) RGB in 0..1."""
        source = source.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == torch.bfloat16):
            return self.model(source, self.reference_features)

    def close(self) -> None:
        """Nothing to release: the model belongs to the caller."""


# Converting (a TorchScript trace) keeps memory for the life of the process, so each network
# is converted once and the converted model reused: a server that opens a pipeline per viewer
# must not grow with every viewer.
_converted: dict[tuple, object] = {}
_lock = threading.Lock()
KEEP_CONVERTED = 4  # networks kept converted per process


def _digest(module: torch.nn.Module, example_inputs: tuple, batch_input: int) -> tuple:
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest(), type(module).__name__, tuple(tuple(x.shape) for x in example_inputs), batch_input


def compile_openvino(
    module: torch.nn.Module, example_inputs: tuple, batch_input: int, dtype: torch.dtype, threads: int
):
    """`module` converted to OpenVINO and compiled for this CPU, any batch size on input
    `batch_input` (the other inputs keep the example's shape)."""
    ov = import_openvino()
    key = _digest(module, example_inputs, batch_input)
    config = {
        "PERFORMANCE_HINT": "LATENCY",  # one request at a time, all threads on it
        "INFERENCE_NUM_THREADS": int(threads),
        "INFERENCE_PRECISION_HINT": "bf16" if dtype == torch.bfloat16 else "f32",
    }
    with _lock:
        converted = _converted.pop(key, None)
        if converted is None:
            with torch.no_grad():
                converted = ov.convert_model(module.eval(), example_input=example_inputs)
            shapes = [[-1, *x.shape[1:]] if i == batch_input else list(x.shape) for i, x in enumerate(example_inputs)]
            converted.reshape(dict(enumerate(shapes)))
        _converted[key] = converted  # most recently used last
        while len(_converted) > KEEP_CONVERTED:
            _converted.pop(next(iter(_converted)))
        return ov.Core().compile_model(converted, "CPU", config)


class OpenVINORenderer:
    """The renderer converted to OpenVINO and compiled for this CPU (any batch size)."""

    name = "openvino"

    def __init__(self, model: Renderer, reference_features: torch.Tensor, dtype: torch.dtype, threads: int):
        size = model.cfg.resolution
        refs = reference_features.detach().float().cpu().contiguous().clone()  # not an inference-mode tensor
        example = (torch.zeros(1, SOURCE_CHANNELS, size, size), refs)
        self.compiled = compile_openvino(model, example, 0, dtype, threads)
        self.request = self.compiled.create_infer_request()
        self.reference_features = refs.numpy()
        self.device = torch.device("cpu")

    def __call__(self, source: torch.Tensor) -> torch.Tensor:
        """(B, 7, R, R) source -> (B, 3, R, R) RGB in 0..1, float32."""
        x = np.ascontiguousarray(source.detach().float().cpu().numpy())
        out = self.request.infer([x, self.reference_features], share_outputs=False)[0]
        return torch.from_numpy(np.asarray(out, np.float32))

    def close(self) -> None:
        """Free the compiled model now, not whenever the garbage collector reaches it."""
        self.request = self.compiled = None


def agreement_db(runtime, model: Renderer, reference_features: torch.Tensor) -> float:
    """PSNR (dB) of `runtime`'s output against the PyTorch model's fp32 output on one fixed
    pseudo-random source."""
    size = model.cfg.resolution
    source = torch.rand(1, SOURCE_CHANNELS, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = model(source.to(reference_features.device), reference_features).float().cpu()
    got = runtime(source).float().cpu()
    mse = float(torch.mean((got - want) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def renderer_runtime(model: Renderer, reference_features: torch.Tensor, backend: str, dtype: torch.dtype, threads: int):
    """The runtime `backend` names for this model on reference_features' device (see the
    module docstring for auto)."""
    if backend not in BACKENDS:
        raise DhliveError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    device = reference_features.device
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        return TorchRenderer(model, reference_features, dtype)
    if device.type != "cpu":
        raise DhliveError(f"--backend {backend} runs on a CPU; use --device cpu or --backend torch")
    try:
        runtime = OpenVINORenderer(model, reference_features, dtype, threads)
        agreement = agreement_db(runtime, model, reference_features)
        if agreement < MIN_AGREEMENT_DB:
            raise DhliveError(f"its output differs from PyTorch's ({agreement:.1f} dB < {MIN_AGREEMENT_DB:g} dB)")
    except ImportError:
        if backend == "auto":
            return TorchRenderer(model, reference_features, dtype)
        raise DhliveError("--backend openvino: the openvino package is not installed (pip install openvino)") from None
    except Exception as e:  # auto must run wherever PyTorch runs, whatever the conversion raised
        if backend == "auto":
            return TorchRenderer(model, reference_features, dtype)
        message = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DhliveError(f"--backend openvino: {message}") from None
    return runtime
