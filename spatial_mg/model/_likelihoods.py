"""Observation models of the modalities, as Pyro distributions over a cell's feature vector.

- ``"nb"``: :class:`NegativeBinomialLog`, raw counts, parameterised in log space;
- ``"gaussian"``: ``Normal(loc, scale).to_event(1)``, intensities or CLR values;
- ``"bernoulli"``: ``Bernoulli(logits).to_event(1)``, binarised accessibility.

Each has event dimension 1 (the features of one cell), so a cell's whole modality is one
draw that a per-cell mask can switch off. Argument validation is off: the data are
checked once on the way in, not at every step.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import Bernoulli, Independent, TorchDistribution, constraints

_EPS = 1e-8


def log_factorial_sum(x: torch.Tensor) -> torch.Tensor:
    """``sum_g lgamma(x_g + 1)`` over the last axis: the data-only part of the NB density."""
    return torch.lgamma(x + 1.0).sum(-1)


class _NegativeBinomialLogLik(torch.autograd.Function):
    """Fused NB log-likelihood per cell with a hand-written backward.

    ``log p = sum_g [lgamma(x+t) - lgamma(t) + t log t - (t+x) log(t+mu) + x log mu] - sum_g lgamma(x+1)``
    with ``log mu = logits (- logsumexp(logits) if normalized) + log_library``.

    Why by hand: on CPU a step is bound by passes over the cells x genes arrays, and
    autograd of that expression makes about 40 of them (logaddexp's backward alone a
    dozen); this makes about 12, turning sums over genes into matrix-vector products.
    ``lgamma(x+t) - lgamma(t)`` and its derivative vanish where ``x = 0``, so with
    ``cols``/``vals`` (each row's non-zero columns and values, zero-padded) the special
    functions, the costliest operations, run on the non-zero entries alone.
    """

    @staticmethod
    def forward(ctx, logits, log_library, log_theta, x, log_factorial, cols, vals, normalized):
        if normalized:  # softmax by hand: logsumexp + exp would take twice the passes
            top = logits.amax(-1, keepdim=True)
            mu = (logits - top).exp_()
            total = mu.sum(-1)
            mu.mul_((torch.exp(log_library) / total).unsqueeze(-1))
            shift = log_library - top.squeeze(-1) - total.log()
        else:
            shift = log_library
            mu = torch.exp(logits + shift.unsqueeze(-1))
        theta = log_theta.exp()
        t_mu = mu + theta
        log_t_mu = t_mu.log()
        # sum_g x log mu = x . logits + (sum_g x) shift;  sum_g (t + x) log(t + mu) likewise;
        # the sums weighted by x over its non-zeros where given (padding: count 0 adds 0)
        if cols is None:
            x_logits, x_log_t_mu, x_sum = (x * logits).sum(-1), (x * log_t_mu).sum(-1), x.sum(-1)
        else:
            x_logits = (vals * logits.gather(-1, cols)).sum(-1)
            x_log_t_mu = (vals * log_t_mu.gather(-1, cols)).sum(-1)
            x_sum = vals.sum(-1)
        theta_log_t_mu = log_t_mu @ theta if theta.dim() == 1 else (theta * log_t_mu).sum(-1)
        ll = x_logits + x_sum * shift - x_log_t_mu - theta_log_t_mu + (theta * log_theta).sum(-1) - log_factorial
        ratio, ctx.ratio_saved = _gamma_ratio(theta, x, cols, vals)
        ctx.normalized = normalized
        ctx.save_for_backward(x, mu, t_mu, log_t_mu, theta, log_theta, log_library, cols, vals)
        return ll + ratio

    @staticmethod
    def backward(ctx, grad):
        x, mu, t_mu, log_t_mu, theta, log_theta, log_library, cols, vals = ctx.saved_tensors
        g = grad.unsqueeze(-1)
        g_logits = g_log_library = g_log_theta = None
        q = (x + theta).div_(t_mu)  # (t + x) / (t + mu), shared by both gradients
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            r = torch.addcmul(-theta, q, theta)  # d log p / d log mu = t (x - mu) / (t + mu)
            r_sum = r.sum(-1)
            if ctx.needs_input_grad[1]:
                g_log_library = grad * r_sum
            r.mul_(g)
            if ctx.normalized:  # through the softmax: minus softmax * sum, softmax = mu / library
                coef = (grad * r_sum * torch.exp(-log_library)).unsqueeze(-1)
                r.addcmul_(mu, coef, value=-1.0)
            g_logits = r
        if ctx.needs_input_grad[2]:
            if theta.dim() == 1:  # per feature: the sums over cells are vector-matrix products
                g_theta = grad.sum() * (log_theta + 1.0) - grad @ log_t_mu - grad @ q
            else:
                g_theta = g * ((log_theta + 1.0) - log_t_mu - q)
            g_theta = g_theta + _gamma_ratio_grad(theta, grad, x, cols, vals, ctx.ratio_saved)
            g_log_theta = (g_theta * theta).sum_to_size(log_theta.shape)
        return g_logits, g_log_library, g_log_theta, None, None, None, None, None


_TABLE = 32  # counts below this take lgamma / digamma differences from a per-feature table


def _ratio_table(theta: torch.Tensor, f) -> torch.Tensor:
    """``T[g, v] = sum_{k < v} f(theta_g + k)`` for ``v < _TABLE``: with ``f = log`` it is
    ``lgamma(v + t) - lgamma(t)``, with ``f = reciprocal`` ``digamma(v + t) - digamma(t)``."""
    steps = f(theta.unsqueeze(-1) + torch.arange(_TABLE - 1, dtype=theta.dtype, device=theta.device))
    return torch.cat([torch.zeros_like(steps[:, :1]), steps.cumsum(-1)], -1)


def _gamma_ratio(theta, x, cols, vals):
    """Per cell ``sum_g lgamma(x_g + t_g) - lgamma(t_g)``, and what its gradient needs.

    Three ways, one answer: densely (GPU: special functions are cheap there); on the
    non-zeros (per-cell theta); or, for per-feature theta and counts given as non-zeros
    (CPU), small counts from a per-feature table of partial sums, which replaces ``lgamma``
    and ``digamma`` calls (about 5 ns each on CPU) by a lookup, and the rare large counts
    exactly.
    """
    if cols is None:
        return (torch.lgamma(x + theta) - torch.lgamma(theta)).sum(-1), None
    if theta.dim() > 1:
        theta_nz = theta.gather(-1, cols)
        return (torch.lgamma(vals + theta_nz) - torch.lgamma(theta_nz)).sum(-1), theta_nz
    flat = cols * _TABLE + vals.clamp(max=_TABLE - 1).long()  # padding: column 0, count 0 -> 0
    per = _ratio_table(theta, torch.log).reshape(-1)[flat]
    large = (vals >= _TABLE).nonzero(as_tuple=True)
    if large[0].numel():
        t = theta[cols[large]]
        per[large] = torch.lgamma(vals[large] + t) - torch.lgamma(t)
    return per.sum(-1), (flat, large)


def _gamma_ratio_grad(theta, grad, x, cols, vals, saved):
    """``sum_cells grad * (digamma(x + t) - digamma(t))``, shaped like ``theta``'s gradient."""
    g = grad.unsqueeze(-1)
    if cols is None:
        return (g * (torch.digamma(x + theta) - torch.digamma(theta))).sum_to_size(theta.shape if theta.dim() == 1 else x.shape)
    if theta.dim() > 1:
        theta_nz = saved
        sparse = g * (torch.digamma(vals + theta_nz) - torch.digamma(theta_nz))  # padding: exactly 0
        return torch.zeros_like(x).scatter_add_(-1, cols, sparse)
    flat, large = saved
    # weight of each (feature, count) pair, then one dot product per feature with the table
    weights = torch.zeros(theta.shape[0] * _TABLE, dtype=grad.dtype, device=grad.device)
    weights.index_add_(0, flat.reshape(-1), g.expand_as(vals).reshape(-1))
    table = _ratio_table(theta, torch.reciprocal)
    out = (weights.view(-1, _TABLE) * table).sum(-1)
    if large[0].numel():  # those were counted at the last table entry: swap in the exact value
        c = cols[large]
        t = theta[c]
        exact = torch.digamma(vals[large] + t) - torch.digamma(t) - table[c, -1]
        out.index_add_(0, c, grad[large[0]] * exact)
    return out


class NegativeBinomialLog(TorchDistribution):
    """Negative binomial over a vector of counts, parameterised in log space.

    ``p(x) = Gamma(x + theta) / (Gamma(theta) x!) (theta / (theta + mu))^theta
    (mu / (theta + mu))^x`` per feature, independent across features, summed over the
    last axis. The mean is given as decoder ``logits`` turned into proportions by a
    softmax and scaled by the library size (``log_mu = log_softmax(logits) +
    log_library``), or directly as ``log_mu``. One ``lgamma`` per non-zero entry (torch's
    logits form needs three per entry), finite for tiny means.

    Parameters
    ----------
    log_theta
        Log inverse dispersion, ``(n_features,)`` or one row per cell.
    log_mu
        Log mean, ``(..., n_features)``; or give ``logits`` and ``log_library``.
    logits, log_library
        Decoder output ``(..., n_features)`` and log library size ``(...,)``.
    log_factorial
        Optional precomputed ``sum_g lgamma(x_g + 1)`` of the counts ``log_prob`` will see,
        ``(...,)``; it depends on the data only, so training computes it once.
    nonzero
        Optional ``(cols, vals)``: each row's non-zero columns and values of those
        counts, padded with zeros to a common width (long, float; ``(..., width)``); the
        special functions then run on these entries only.
    """

    arg_constraints = {"logits": constraints.real, "log_theta": constraints.real}
    support = constraints.independent(constraints.nonnegative_integer, 1)

    def __init__(
        self,
        log_theta: torch.Tensor,
        log_mu: torch.Tensor | None = None,
        *,
        logits: torch.Tensor | None = None,
        log_library: torch.Tensor | None = None,
        log_factorial: torch.Tensor | None = None,
        nonzero: tuple[torch.Tensor, torch.Tensor] | None = None,
        validate_args=None,
    ):
        if (log_mu is None) == (logits is None):
            raise ValueError("give either log_mu, or logits with log_library")
        self.normalized = log_mu is None
        self.logits = logits if log_mu is None else log_mu
        self.log_library = log_library if log_mu is None else self.logits.new_zeros(self.logits.shape[:-1])
        self.log_theta = log_theta
        self.log_factorial = log_factorial
        self.nonzero = nonzero
        shape = self.logits.shape
        super().__init__(shape[:-1], shape[-1:], validate_args=False if validate_args is None else validate_args)

    @property
    def log_mu(self) -> torch.Tensor:
        if not self.normalized:
            return self.logits
        return torch.log_softmax(self.logits, -1) + self.log_library.unsqueeze(-1)

    @property
    def mean(self) -> torch.Tensor:
        return self.log_mu.exp()

    @property
    def variance(self) -> torch.Tensor:
        mu = self.mean
        return mu + mu**2 / self.log_theta.exp()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_factorial = self.log_factorial if self.log_factorial is not None else log_factorial_sum(value)
        cols, vals = self.nonzero if self.nonzero is not None else (None, None)
        return _NegativeBinomialLogLik.apply(
            self.logits, self.log_library, self.log_theta, value, log_factorial, cols, vals, self.normalized
        )

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            theta = self.log_theta.exp().expand(shape)
            rate = torch._standard_gamma(theta) * (self.mean.expand(shape) / theta)
            return torch.poisson(rate)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        shape = batch_shape + self.event_shape
        log_theta = self.log_theta if self.log_theta.dim() == 1 else self.log_theta.expand(shape)
        return NegativeBinomialLog(log_theta, self.log_mu.expand(shape), validate_args=False)


class DiagonalGaussian(TorchDistribution):
    """Independent Gaussian per feature, one event per cell: ``Normal(loc, scale).to_event(1)``
    with a cheaper ``log_prob``.

    Why: with one scale per feature (the default) torch's Normal broadcasts the scale to
    every cell and takes its square and log there, about eight passes over the cells x
    features array and as many back; here the log-scales are summed once per feature and
    the density takes four, ``-0.5 sum ((x - loc) / scale)^2 - sum log scale - const``.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        self.loc, self.scale = loc, scale
        batch_shape = torch.broadcast_shapes(loc.shape, scale.shape)
        super().__init__(batch_shape[:-1], batch_shape[-1:], validate_args=False if validate_args is None else validate_args)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> torch.Tensor:
        return self.scale.pow(2).expand(self.batch_shape + self.event_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        n_features = self.event_shape[0]
        quadratic = ((value - self.loc) / self.scale).square().sum(-1)
        return -0.5 * quadratic - self.scale.log().sum(-1) - 0.5 * n_features * math.log(2 * math.pi)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + eps * self.scale

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.event_shape
        return DiagonalGaussian(self.loc.expand(shape), self.scale.expand(shape), validate_args=False)


def gaussian(loc: torch.Tensor, scale: torch.Tensor) -> TorchDistribution:
    """Independent Gaussian per feature, one event per cell."""
    return DiagonalGaussian(loc, scale.clamp(min=_EPS))


def bernoulli(logits: torch.Tensor) -> TorchDistribution:
    """Independent Bernoulli per feature from logits, one event per cell."""
    return Independent(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)
