"""The report's sections, one module each: ``build(res, an) -> Section`` from the loaded
results (:class:`~benchmarks.report.load.Results`) and their statistics
(:class:`~benchmarks.report.analysis.Analysis`). :data:`benchmarks.report.page.SECTIONS`
orders them."""
