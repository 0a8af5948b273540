"""The search: its contract, the ask/tell Search, executors and the loop. Never imports torch."""
