"""Models that travel: ONNX export and import, PyTorch import.

- :func:`to_onnx` writes a model's inference graph (``Sequential.to_onnx``);
- :func:`from_onnx` reads an MLP graph back into a :class:`fastnn.Sequential`;
- :func:`from_torch` builds one from a torch ``nn.Sequential`` or loads a
  state_dict into a given architecture.

onnx (the ``onnx`` extra) and torch are imported only when these are called.
"""

from fastnn.interop.onnx_export import OPSET, model_to_onnx, to_onnx
from fastnn.interop.onnx_import import from_onnx
from fastnn.interop.torch_import import from_torch

__all__ = ["OPSET", "from_onnx", "from_torch", "model_to_onnx", "to_onnx"]
