"""A bare torch training loop of the PoE-VAE's network and likelihoods: the floor of a step.

The same encoders and decoders as ``spatial_mg`` builds at ``throughput.py``'s settings
(two hidden layers of 128 with layer norm and ReLU, dropout 0.1 in the encoders, a
16-dimensional latent), the product of the two experts with the prior, a reparameterised
draw, a negative-binomial likelihood (softmax proportions times the library, one inverse
dispersion per gene) for the counts, a Gaussian one (one scale per feature) for the
standardised metabolites, the analytic KL, and fused Adam. Nothing else: no Pyro, no
presence masks, no modality dropout, no clipping, no weight average, no NaN watch, data
dense on the device. ``throughput.py --compare bare`` runs it beside the package on the
same data; the package's cells/s divided by this loop's is the share of a step that is
modelling rather than host-side work.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def _mlp(n_in: int, n_out: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(2):
        layers += [nn.Linear(width, 128), nn.LayerNorm(128), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = 128
    return nn.Sequential(*layers, nn.Linear(width, n_out))


class BareVAE(nn.Module):
    def __init__(self, n_genes: int, n_metabolites: int, n_latent: int = 16):
        super().__init__()
        self.enc_rna, self.enc_msi = _mlp(n_genes, 2 * n_latent, 0.1), _mlp(n_metabolites, 2 * n_latent, 0.1)
        self.dec_rna, self.dec_msi = _mlp(n_latent, n_genes, 0.0), _mlp(n_latent, n_metabolites, 0.0)
        self.log_theta = nn.Parameter(torch.zeros(n_genes))
        self.scale_raw = nn.Parameter(torch.zeros(n_metabolites))

    def loss(self, counts: torch.Tensor, log_library: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        h = torch.log1p(counts * torch.exp(math.log(1e4) - log_library).unsqueeze(-1))
        mu_r, lv_r = self.enc_rna(h).chunk(2, -1)
        mu_m, lv_m = self.enc_msi(msi).chunk(2, -1)
        prec_r, prec_m = torch.exp(-lv_r.clamp(-10, 8)), torch.exp(-lv_m.clamp(-10, 8))
        total = 1.0 + prec_r + prec_m
        loc, scale = (mu_r * prec_r + mu_m * prec_m) / total, total.rsqrt()
        z = loc + scale * torch.randn_like(loc)
        log_mu = torch.log_softmax(self.dec_rna(z), -1) + log_library.unsqueeze(-1)
        theta = self.log_theta.exp()
        log_t_mu = torch.logaddexp(self.log_theta, log_mu)
        nb = (
            torch.lgamma(counts + theta) - torch.lgamma(theta) - torch.lgamma(counts + 1.0)
            + theta * (self.log_theta - log_t_mu) + counts * (log_mu - log_t_mu)
        ).sum(-1)
        gauss = torch.distributions.Normal(self.dec_msi(z), nn.functional.softplus(self.scale_raw) + 1e-3).log_prob(msi).sum(-1)
        kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * scale.log()).sum(-1)
        return (kl - nb - gauss).mean()


def run(mdata, batch_size: int, epochs: int, device: torch.device, seed: int = 0) -> list[float]:
    """Train for ``epochs`` epochs; return the seconds of each."""
    torch.manual_seed(seed)
    rna, met = mdata.mod["rna"].X, mdata.mod["msi"].X
    dense = rna.toarray() if sp.issparse(rna) else np.asarray(rna)
    counts = torch.as_tensor(dense, dtype=torch.float32, device=device)
    log_library = counts.sum(1).clamp_min(1.0).log()
    msi = torch.as_tensor(np.asarray(met), dtype=torch.float32, device=device)
    msi = (msi - msi.mean(0)) / msi.std(0).clamp_min(1e-6)
    model = BareVAE(counts.shape[1], msi.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-2, fused=True)
    n = counts.shape[0]
    seconds = []
    for _ in range(epochs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for idx in torch.randperm(n, device=device).split(batch_size):
            loss = model.loss(counts[idx], log_library[idx], msi[idx])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
        float(loss)  # waits for the device
        seconds.append(time.perf_counter() - t0)
    return seconds
