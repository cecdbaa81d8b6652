"""Achieved and peak TFLOP/s: what the report's fraction of peak and the GPU check's
throughput target are measured against."""

from __future__ import annotations


def tflops(samples_per_s: float, num_params: float) -> float:
    """Achieved TFLOP/s of an MLP's training step: 6 flops per parameter per sample (2 in
    the forward matmuls, 4 in the backward's two), the optimizer's elementwise work left out."""
    return 6 * samples_per_s * num_params / 1e12


#: float32 peaks without tensor cores (TF32 off, as the suite runs), TFLOP/s, from the
#: vendors' datasheets: NVIDIA H100 SXM5 and H200 67 (H100 PCIe 51), A100 19.5
PEAK_FP32_TFLOPS = {
    "H200": 67.0,
    "H100 SXM": 67.0,
    "H100 80GB HBM3": 67.0,
    "H100 PCIe": 51.0,
    "A100": 19.5,
}
PEAK_SOURCE = "NVIDIA datasheets: H100 SXM5 and H200 67, H100 PCIe 51, A100 19.5 TFLOP/s float32 (no tensor cores)"


def peak_of(gpu_names: list[str]) -> tuple[str, float] | None:
    """The (name, float32 peak) of the first GPU the table knows, by name substring."""
    for name in gpu_names:
        for key, peak in PEAK_FP32_TFLOPS.items():
            if key.lower() in str(name).lower():
                return name, peak
    return None
