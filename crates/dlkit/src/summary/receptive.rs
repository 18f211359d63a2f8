//! Receptive field of stacked convolution / pooling layers.
//!
//! Going down from the top layer, where one value sees itself (r_L = 1), each layer l of
//! kernel k_l and stride s_l widens what one value sees:
//! r_{l−1} = s_l · r_l + (k_l − s_l).
//! The result r_0 is the number of input pixels (along one side) behind one top value.

/// Receptive field (one side, in input pixels) of layers given bottom-up as `(kernel, stride)`.
///
/// Three stacked 3×3 stride-1 convolutions see 7×7 pixels; an empty stack sees 1.
pub fn receptive_field(layers: &[(usize, usize)]) -> usize {
    // s·r + (k − s) written as s·(r − 1) + k, which cannot underflow since r ≥ 1.
    layers.iter().rev().fold(1, |r, &(kernel, stride)| stride * (r - 1) + kernel)
}

#[cfg(test)]
mod tests {
    use super::receptive_field;

    #[test]
    fn stacked_and_strided_layers() {
        assert_eq!(receptive_field(&[]), 1);
        assert_eq!(receptive_field(&[(3, 1), (3, 1), (3, 1)]), 7);
        // conv 3×3/1 then pool 2×2/2: top r=1 → pool: 2·1 + 0 = 2 → conv: 1·2 + 2 = 4.
        assert_eq!(receptive_field(&[(3, 1), (2, 2)]), 4);
    }
}
