"""Figures: metabolite maps (truth | prediction | uncertainty) and the registration overlay."""

from ._maps import metabolite_maps
from ._registration import registration

__all__ = ["metabolite_maps", "registration"]
