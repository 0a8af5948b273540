"""Grammatical evolution: the BNF grammar, the PonyGE2-exact mapper and the GE operators.

Pure, never torch.
"""
