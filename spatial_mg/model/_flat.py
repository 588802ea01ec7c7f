"""All trainable parameters as views of one flat tensor, their gradients as views of another.

Why: gradient zeroing, norm clipping, Adam and the moving average of the weights
(``_training``) each become one operation on one tensor instead of a loop over a few
dozen, and swapping the averaged weights in and out for validation is a single copy.
(On this project's 2-core CPU benchmark the step time did not change measurably: there
these passes are bound by memory bandwidth, not by the per-tensor loop.) Autograd
accumulates into an existing ``.grad`` in place, so gradients land in the flat buffer
through their views; the module's parameters stay ordinary ``nn.Parameter`` objects
(state dicts, saving and loading are unchanged).
"""

from __future__ import annotations

import torch


class FlatParameters:
    """Re-seat ``params`` (trainable, same device and dtype) as views of one buffer.

    Attributes
    ----------
    flat
        The parameter the optimiser updates: every entry of ``params``, concatenated.
    """

    def __init__(self, params: list[torch.nn.Parameter]):
        if not params:
            raise ValueError("no parameters to flatten")
        if len({(p.dtype, p.device) for p in params}) != 1:
            raise ValueError("flat parameters need one dtype and one device")
        with torch.no_grad():
            values = torch.cat([p.detach().reshape(-1) for p in params])
        self.flat = torch.nn.Parameter(values)
        self.flat.grad = torch.zeros_like(values)
        offset = 0
        for p in params:
            n = p.numel()
            p.data = self.flat.data[offset : offset + n].view_as(p)
            p.grad = self.flat.grad[offset : offset + n].view_as(p)
            offset += n
        self.params = params
        self._grad_pointers = [p.grad.data_ptr() for p in params]

    def zero_grad(self) -> None:
        """Zero every gradient in one pass, keeping the views (``set_to_none`` would drop them)."""
        self.flat.grad.zero_()
        # autograd keeps a .grad it was handed unless, e.g., someone replaced or dropped it:
        # a gradient outside the buffer would be silently ignored by the optimiser
        if [None if p.grad is None else p.grad.data_ptr() for p in self.params] != self._grad_pointers:
            raise RuntimeError("a parameter's gradient is no longer a view of the flat buffer (was .grad reset?)")

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale the gradient so its global 2-norm is at most ``max_norm``; return the norm before."""
        return torch.nn.utils.clip_grad_norm_([self.flat], max_norm)
