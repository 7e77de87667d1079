"""EPNAS (Zhou et al. 2019): a REINFORCE policy morphs networks under soft resource constraints."""
