"""Pure tensor functions on (B, C, H, W) that follow the input's device and dtype.

Stages are thin classes over these.
"""
