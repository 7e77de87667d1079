"""EoiNAS (Zhou et al. 2020) on GDAS/DARTS cells."""
