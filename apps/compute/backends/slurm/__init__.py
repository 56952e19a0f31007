"""The Slurm executor: batch scripts, job arrays and state polling over Slurm's command line, run on
the portal host or on a login node through SSH."""
