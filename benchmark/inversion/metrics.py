"""How close a reconstruction is to its source crop: PSNR and SSIM from a maintained implementation.

torchmetrics' functional PSNR and SSIM (scikit-image is not a dependency of the suite); the record
names the implementation and its version (`IMPLEMENTATION`). Both on RGB images in [0, 1] with
data_range 1.0; SSIM with torchmetrics' defaults (Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03:
Wang et al. 2004's constants), averaged over channels and positions.
"""
import torch

METRICS = ("PSNR", "SSIM")


def implementation() -> str:
    import torchmetrics

    return f"torchmetrics {torchmetrics.__version__} (functional.image peak_signal_noise_ratio, " \
           "structural_similarity_index_measure; data_range 1.0)"


def image_scores(reconstruction: torch.Tensor, source: torch.Tensor) -> dict:
    """{"PSNR": dB, "SSIM": in [-1, 1]} of one 3 x H x W reconstruction against its 3 x H x W source, in [0, 1]."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    a, b = reconstruction[None].double().cpu(), source[None].double().cpu()
    return {"PSNR": float(peak_signal_noise_ratio(a, b, data_range=1.0)),
            "SSIM": float(structural_similarity_index_measure(a, b, data_range=1.0))}
