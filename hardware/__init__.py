"""Targets and latency measurement for exported models; runs without torch on an edge box."""
