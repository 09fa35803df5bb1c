"""Many runs: replications and the stopping rule, sweeps, dask clusters, churn fits."""
