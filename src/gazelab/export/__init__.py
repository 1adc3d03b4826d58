"""Model export for other runtimes (ONNX: backbone and decoder as separate graphs)."""

from gazelab.export.onnx import OnnxExport, OnnxPredictor, export_onnx

__all__ = ["OnnxExport", "OnnxPredictor", "export_onnx"]
