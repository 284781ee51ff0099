"""Resource measurement: peak process memory, peak GPU memory, host facts.

Framework-free on purpose: torch and tensorflow are consulted only when the
caller has already imported them (looked up in ``sys.modules``), so measuring a
PyTorch run never drags TensorFlow into its memory figures, and vice versa.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
from typing import Any

import psutil

try:  # Unix only; on Windows the lifetime high-water mark is simply not reported.
    import resource as _resource
except ImportError:  # pragma: no cover
    _resource = None

_MB = 1024 * 1024


def _rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / _MB


def max_rss_lifetime_mb() -> float | None:
    """The OS high-water mark of this process's RSS since it started, in MB."""
    if _resource is None:
        return None
    peak = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / _MB if sys.platform == "darwin" else peak / 1024


class PeakMemorySampler:
    """Measure the peak RSS of this process (not its children) over a ``with`` block.

    A daemon thread samples the RSS every ``interval_s`` seconds; the block's
    start and end are sampled too, so even a very short block has a value.
    Allocations that rise and fall between two samples can be missed, which is
    why ``max_rss_lifetime_mb`` (the kernel's exact but whole-lifetime peak) is
    reported alongside as a cross-check rather than mixed into the window peak.

    After the block: ``baseline_rss_mb`` (at entry), ``peak_rss_mb`` (sampled
    window peak), ``max_rss_lifetime_mb`` and ``gpu_peak_mb`` (see
    ``gpu_peak_mb()``; the framework peak counters are reset at entry so that it
    covers the block, or None without a GPU).
    """

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.baseline_rss_mb: float | None = None
        self.peak_rss_mb: float | None = None
        self.max_rss_lifetime_mb: float | None = None
        self.gpu_peak_mb: float | None = None
        self._process = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = _rss_mb(self._process)
        # A float max is atomic enough under the GIL for a monitor's purposes.
        self.peak_rss_mb = rss if self.peak_rss_mb is None else max(self.peak_rss_mb, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakMemorySampler:
        reset_gpu_peak()
        self.baseline_rss_mb = _rss_mb(self._process)
        self.peak_rss_mb = self.baseline_rss_mb
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.max_rss_lifetime_mb = max_rss_lifetime_mb()
        self.gpu_peak_mb = gpu_peak_mb()

    def as_metrics(self) -> dict[str, float]:
        """The measured values under their metric keys, skipping those not measured."""
        share = (
            None
            if self.peak_rss_mb is None or self.baseline_rss_mb is None
            else self.peak_rss_mb - self.baseline_rss_mb
        )
        values = {
            "peak_rss_mb": self.peak_rss_mb,
            # The run's own share: its peak above the process as the block began (the
            # frameworks, the data and the store already loaded).
            "peak_rss_share_mb": share,
            "max_rss_lifetime_mb": self.max_rss_lifetime_mb,
            "gpu_peak_mb": self.gpu_peak_mb,
        }
        return {k: float(v) for k, v in values.items() if v is not None}


def _torch_cuda():
    """The ``torch.cuda`` module if torch is already imported and a GPU is usable."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_available() else None
    except Exception:  # a broken driver must not break a measurement
        return None


def _tf_gpus() -> list[str]:
    """TensorFlow's GPU device names if tensorflow is already imported."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return []
    try:
        return [f"GPU:{i}" for i, _ in enumerate(tf.config.list_physical_devices("GPU"))]
    except Exception:
        return []


def reset_gpu_peak() -> None:
    """Reset the frameworks' peak-memory counters so the next reading covers a new window."""
    cuda = _torch_cuda()
    if cuda is not None:
        for i in range(cuda.device_count()):
            cuda.reset_peak_memory_stats(i)
    tf = sys.modules.get("tensorflow")
    for device in _tf_gpus():
        try:
            tf.config.experimental.reset_memory_stats(device)
        except Exception:
            pass


def _nvml_process_mb() -> float | None:
    """GPU memory this process holds now, summed over devices, via NVML (None if unknown)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver / no GPU
        return None
    try:
        pid, used = os.getpid(), 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                # usedGpuMemory is None where the driver hides per-process figures.
                if proc.pid == pid and proc.usedGpuMemory:
                    used += proc.usedGpuMemory
        return used / _MB if used else None
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def gpu_peak_mb() -> float | None:
    """Peak GPU memory of this process in MB, or None when there is no GPU to measure.

    Sources, all that apply (the largest wins, since a process may run both
    frameworks): ``torch.cuda.max_memory_allocated`` if torch is imported and
    CUDA is available; TensorFlow's ``get_memory_info(...)["peak"]`` if
    tensorflow is imported and sees a GPU. Without either, NVML's current
    per-process usage is the best available figure (NVML keeps no peak).
    """
    readings: list[float] = []
    cuda = _torch_cuda()
    if cuda is not None:
        readings += [cuda.max_memory_allocated(i) / _MB for i in range(cuda.device_count())]
    tf = sys.modules.get("tensorflow")
    for device in _tf_gpus():
        try:
            readings.append(tf.config.experimental.get_memory_info(device)["peak"] / _MB)
        except Exception:
            pass
    if readings:
        return max(readings)
    return _nvml_process_mb()


def _cpu_model() -> str:
    # platform.processor() is empty on most Linux systems; /proc/cpuinfo is not.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Instruction sets that decide how fast CPU training and serving run: bfloat16 (avx512_bf16,
# amx_bf16, which decide the precision that pays) and int8 (the VNNI and AMX int8
# instructions ONNX Runtime uses for quantized models).
SPEED_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def cpu_flags() -> list[str]:
    """The ``SPEED_FLAGS`` this CPU has, from /proc/cpuinfo ([] where it cannot tell)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [flag for flag in SPEED_FLAGS if flag in have]
    except OSError:
        pass
    return []


def native_bf16() -> bool:
    """Does the CPU compute bfloat16 natively? Elsewhere bf16 is emulated, and slower than
    float32."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


def _gpu_name() -> str | None:
    cuda = _torch_cuda()
    if cuda is not None:
        return cuda.get_device_name(0)
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError when there is no driver
        return None
    try:
        if pynvml.nvmlDeviceGetCount() == 0:
            return None
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        return name.decode() if isinstance(name, bytes) else name
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def system_info() -> dict[str, Any]:
    """Facts about the host worth logging next to timing and memory figures."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "ram_total_gb": round(psutil.virtual_memory().total / 1024**3, 2),
        "cpu_flags": " ".join(cpu_flags()),
        "gpu_name": _gpu_name(),
        "platform": platform.platform(),
        "python_version": platform.python_version(),
    }
    # Versions only of frameworks already loaded: importing one here would cost
    # seconds and hundreds of MB, and distort the measurements this module makes.
    for module in ("torch", "tensorflow", "keras"):
        if module in sys.modules:
            info[f"{module}_version"] = getattr(sys.modules[module], "__version__", None)
    return info
