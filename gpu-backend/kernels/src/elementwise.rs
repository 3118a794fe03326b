//! Element-wise functions of the forward pass: `exp` written as a polynomial (libm's `expf` is
//! a call per element, which no loop around it can vectorize) and BLOOM's GELU on it. Plain
//! Rust in independent lanes, compiled for AVX-512 or AVX2 where the process may use them.

use crate::Isa;

/// BLOOM's GELU (the tanh approximation, as transformers' `bloom_gelu_forward`) of every value,
/// in place: `x/2 * (1 + tanh(y))` with `1 + tanh(y) = 2 - 2 / (e^2y + 1)`.
pub fn gelu(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match Isa::detect() {
        // SAFETY: `Isa::detect()` found AVX-512F (with AVX2 and FMA) usable by this process.
        Isa::Avx512 => unsafe { gelu_avx512(values) },
        // SAFETY: `Isa::detect()` found AVX2 and FMA usable by this process.
        Isa::Avx2 => unsafe { gelu_avx2(values) },
        Isa::Portable => gelu_body(values),
    }
    #[cfg(not(target_arch = "x86_64"))]
    gelu_body(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gelu_avx512(values: &mut [f32]) {
    gelu_body(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(values: &mut [f32]) {
    gelu_body(values);
}

#[inline(always)]
fn gelu_body(values: &mut [f32]) {
    for x in values.iter_mut() {
        let v = *x;
        let y = 0.797_884_6 * v * (1.0 + 0.044_715 * v * v);
        *x = v * (1.0 - 1.0 / (exp(2.0 * y) + 1.0));
    }
}

/// `e^x` within 2 ulp over the range of f32 (Cephes' `expf`: `x = n ln2 + r`, a polynomial
/// in `r`, and `2^n` put into the exponent's bits), with nothing but arithmetic, so that the
/// loops that call it vectorize. Below -87 it is 0's neighbour; above 88 it saturates.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, so that `n * LN2_HI` is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer (to nearest even) and puts it in the low bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // `shifted`'s low bits hold n (two's complement, within ±2^22).
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    e * f32::from_bits(((n + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            let ulp = (want.to_bits() as i64 - got.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {got}, libm {want} ({ulp} ulp)");
            x += 0.0137;
        }
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn gelu_is_the_formula() {
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 / 37.0).collect();
        let want: Vec<f64> = xs
            .iter()
            .map(|&x| {
                let x = f64::from(x);
                0.5 * x * (1.0 + (0.797_884_6 * x * (1.0 + 0.044_715 * x * x)).tanh())
            })
            .collect();
        let mut got = xs.clone();
        gelu(&mut got);
        for ((g, w), x) in got.iter().zip(&want).zip(&xs) {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "gelu({x}) = {g}, want {w}"
            );
        }
    }
}
