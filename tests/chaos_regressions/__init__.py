"""Pinned chaos fault sequences: the smallest sequence that showed each bug."""
