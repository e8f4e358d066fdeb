"""The sandbox: a sample DOL claims system (in simulated time) to run scenarios against."""
