"""The per-item recalibration methods, one module each: a module placed here registers its
method (`calibbench.recalibration.base.methods` imports them all), so the protocol, the
workflow's schema and DAG, and the paper's tables know it without any list to edit.
"""
