//! The coursework's multilayer perceptron: 3072 → 1000 → 1000 → 10 with ReLU, optional
//! dropout on the input and after each hidden layer, optional L2 on the kernels.

use super::{dropout::Dropout, init::glorot_uniform, Inference, Network};
use crate::kernels::{activation::relu, linear::linear};
use candle_core::{Result, Tensor};
use candle_nn::{Init, Linear, ModuleT, VarBuilder};

/// How to build an [`Mlp`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpConfig {
    /// Input features (3072 for a flattened 32×32×3 image).
    pub inputs: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Number of classes (output logits).
    pub classes: usize,
    /// Dropout rate on the input (the coursework uses 0.2 in its dropout variant).
    pub input_dropout: f32,
    /// Dropout rate after each hidden layer (0.5 in the dropout variant).
    pub hidden_dropout: f32,
    /// L2 factor λ on the kernels, as Keras `kernel_regularizer=l2(λ)` (Keras's `'l2'` is 0.01).
    pub l2: f64,
    /// Seed of the dropout masks.
    pub seed: u64,
}

impl MlpConfig {
    /// The coursework's MLP for CIFAR-10: 3072 → 1000 → 1000 → 10, L2 0.01, no dropout.
    pub fn cifar10() -> Self {
        MlpConfig {
            inputs: 3072,
            hidden: vec![1000, 1000],
            classes: 10,
            input_dropout: 0.0,
            hidden_dropout: 0.0,
            l2: 0.01,
            seed: 0,
        }
    }

    /// The same with the coursework's dropout: 0.2 on the input, 0.5 after each hidden layer.
    pub fn with_dropout(mut self) -> Self {
        self.input_dropout = 0.2;
        self.hidden_dropout = 0.5;
        self
    }
}

/// A multilayer perceptron on flattened images; outputs logits (softmax lives in the loss).
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    input_dropout: Dropout,
    hidden_dropout: Vec<Dropout>,
    l2: f64,
}

impl Mlp {
    /// Build the layers `fc1 … fcN` under `vb` (Keras initialisation: Glorot-uniform kernels,
    /// zero biases).
    pub fn new(vb: VarBuilder, config: &MlpConfig) -> Result<Self> {
        if config.inputs == 0 || config.classes == 0 || config.hidden.contains(&0) {
            candle_core::bail!("MLP layer widths must be positive: {config:?}");
        }
        if !(config.l2 >= 0.0 && config.l2.is_finite()) {
            candle_core::bail!("MLP l2 must be finite and ≥ 0, got {}", config.l2);
        }
        let mut widths = vec![config.inputs];
        widths.extend(&config.hidden);
        widths.push(config.classes);
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let vb = vb.pp(format!("fc{}", i + 1));
                let weight = vb.get_with_hints((w[1], w[0]), "weight", glorot_uniform(w[0], w[1]))?;
                let bias = vb.get_with_hints(w[1], "bias", Init::Const(0.0))?;
                Ok(Linear::new(weight, Some(bias)))
            })
            .collect::<Result<Vec<_>>>()?;
        let hidden_dropout = (0..config.hidden.len())
            .map(|i| Dropout::new(config.hidden_dropout, config.seed.wrapping_add(1 + i as u64)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp {
            layers,
            input_dropout: Dropout::new(config.input_dropout, config.seed)?,
            hidden_dropout,
            l2: config.l2,
        })
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self.input_dropout.forward_t(&x.flatten_from(1)?, train)?;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = linear(layer, &h)?;
            if i < last {
                h = self.hidden_dropout[i].forward_t(&relu(&h)?, train)?;
            }
        }
        Ok(h)
    }
}

impl Network for Mlp {
    fn penalty(&self) -> Result<Option<Tensor>> {
        let kernels: Vec<Tensor> = self.layers.iter().map(|l| l.weight().clone()).collect();
        super::layers::l2_penalty(&kernels, self.l2)
    }

    /// The layers with detached weights (no autograd graph); dropout is the identity.
    fn inference(&self) -> Result<Box<dyn Inference + '_>> {
        let layers = self.layers.iter().map(super::layers::frozen_linear).collect();
        Ok(Box::new(FrozenMlp { layers }))
    }
}

/// An [`Mlp`] frozen for inference (see [`Network::inference`]).
struct FrozenMlp {
    layers: Vec<Linear>,
}

impl Inference for FrozenMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.flatten_from(1)?;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = linear(layer, &h)?;
            if i < last {
                h = relu(&h)?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn coursework_mlp_has_4_084_010_parameters() -> Result<()> {
        let vm = VarMap::new();
        let vb = crate::models::init::seeded(&vm, 0, DType::F32, &Device::Cpu);
        Mlp::new(vb, &MlpConfig::cifar10())?;
        let total: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        // 3072·1000 + 1000, 1000·1000 + 1000, 1000·10 + 10
        assert_eq!(total, 3_072_000 + 1_000 + 1_000_000 + 1_000 + 10_000 + 10);
        assert_eq!(total, 4_084_010);
        Ok(())
    }

    #[test]
    fn penalty_is_lambda_times_sum_of_squared_kernels() -> Result<()> {
        let vm = VarMap::new();
        let vb = crate::models::init::seeded(&vm, 0, DType::F32, &Device::Cpu);
        let cfg = MlpConfig { inputs: 3, hidden: vec![2], classes: 2, l2: 0.5, ..MlpConfig::cifar10() };
        let mlp = Mlp::new(vb, &cfg)?;
        let mut by_hand = 0f64;
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.ends_with("weight") {
                by_hand += var.flatten_all()?.to_vec1::<f32>()?.iter().map(|w| (*w as f64).powi(2)).sum::<f64>();
            }
        }
        let p = mlp.penalty()?.unwrap().to_scalar::<f32>()? as f64;
        assert!((p - 0.5 * by_hand).abs() < 1e-5 * by_hand.max(1.0));
        let out = mlp.forward_t(&Tensor::zeros((4, 3), DType::F32, &Device::Cpu)?, true)?;
        assert_eq!(out.dims(), &[4, 2]);
        Ok(())
    }
}
