//! Models of the coursework, each built from a `VarBuilder`.
