"""Speed benchmarks of frad (not part of the method): ``python -m bench`` (backbone, training, scoring,
metrics, in one table) and ``python -m bench.metrics`` (AU-PRO and pixel AUROC against the classic loop).

Modules: ``measure`` (timing, synchronisation, peak memory, CPU facts: one copy for both benchmarks),
``targets`` (``--target name=value`` verdicts), ``settings`` (CLI options), ``workloads`` (what the jobs run
on: inputs, backbone modes, FLOP counts), ``jobs`` and ``method_jobs`` (the measured jobs, one process each),
``run`` (orchestration into rows), ``row_notes`` (the rows' notes column), ``table`` (Markdown/JSON rendering).
"""
