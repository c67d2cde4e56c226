"""compress: hardware-aware LLM compression and benchmarking.

Plan which compression fits a model on a GPU (`compress.planner`), apply it
(`compress.apply`), and measure every variant on the machine at hand
(`compress.measure`).
"""

__version__ = "0.1.0"
