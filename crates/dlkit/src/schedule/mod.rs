//! Learning-rate and batch-size policies.
