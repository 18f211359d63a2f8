//! Optimizers implementing `candle_nn::Optimizer`.
