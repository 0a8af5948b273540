"""The search, never importing torch: ``contract`` (jobs, results, statuses, events, the Problem
protocol, derive_seed; what everything above imports), ``breeding`` and ``survival`` (the GE and
NSGA-II steps of one generation), ``engine`` (the ask/tell Search over run.db), ``start`` (what
a run starts or resumes from), ``executors`` and ``worker_boot`` (where evaluations run),
``failures`` (the machine's failures against the candidate's), ``warmstart``, ``synthetic`` (a
test problem) and ``loop`` (``run_search``, the Python API behind ``evo search``)."""
