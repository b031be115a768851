//! Household timelines, versioned explainable risk rules and relief suggestions. Pure.
