"""Training: state, losses, pure jitted steps, the run's setup, the loop, checkpoints.

`experiments/run.py` drives `loop.train_and_evaluate(config, workdir)`; `setup.setup(config)`
builds what a run needs (the loop, the tests and the benchmarks share it).
"""
