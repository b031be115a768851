//! Synthetic register and feeds with ground truth and controlled noise.
