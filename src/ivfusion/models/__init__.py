"""Learned fusion networks (the preference-conditioned student) and the text encoder that conditions them."""

from ivfusion.models.student import DEGRADATIONS, StudentFusionNet

__all__ = ["DEGRADATIONS", "StudentFusionNet"]
