"""Loss code: RCQ-Loss terms, quality, IoU losses, assigners and the training criterion."""
