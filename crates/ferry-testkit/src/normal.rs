//! Fast, approximately normal tensor data.
//!
//! Each value is a quantile of N(mean, std): 16 random bits pick one of
//! 65,536 equally likely quantiles from a table built once. That is one
//! table lookup per value (no Box-Muller), and the data keeps the entropy of
//! real weights: bf16 values drawn this way compress about as badly as
//! trained bf16 weights do. For f32 the 16 low mantissa bits are random too,
//! as they are in real f32 weights.

use crate::rng::Xoshiro;

/// Words (8 bytes each) of the writer's buffer: 1 MiB.
pub(crate) const CHUNK_WORDS: usize = 1 << 17;

/// The distribution of one tensor's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Normal {
    pub mean: f64,
    pub std: f64,
}

/// The quantiles of one distribution, as bf16 and as f32 bit patterns.
pub(crate) struct Sampler {
    bf16: Box<[u16; 1 << 16]>,
    f32: Box<[u32; 1 << 16]>,
}

impl Sampler {
    pub(crate) fn new(dist: Normal) -> Sampler {
        let mut bf16 = Box::new([0u16; 1 << 16]);
        let mut f32 = Box::new([0u32; 1 << 16]);
        for i in 0..(1usize << 16) {
            let p = (i as f64 + 0.5) / 65536.0;
            let x = (dist.mean + dist.std * inverse_normal_cdf(p)) as f32;
            bf16[i] = f32_to_bf16(x);
            f32[i] = x.to_bits();
        }
        Sampler { bf16, f32 }
    }

    /// Fills `words` with bf16 values, four per word, little-endian in
    /// memory (see [`as_bytes`]).
    pub(crate) fn fill_bf16(&self, rng: &mut Xoshiro, words: &mut [u64]) {
        let t = &*self.bf16;
        rng.fill_with(words, |r| {
            let v = u64::from(t[(r & 0xFFFF) as usize])
                | u64::from(t[((r >> 16) & 0xFFFF) as usize]) << 16
                | u64::from(t[((r >> 32) & 0xFFFF) as usize]) << 32
                | u64::from(t[(r >> 48) as usize]) << 48;
            v.to_le()
        });
    }

    /// Fills `words` with f32 values, two per word: a quantile's sign,
    /// exponent and high mantissa bits, and 16 random low mantissa bits.
    pub(crate) fn fill_f32(&self, rng: &mut Xoshiro, words: &mut [u64]) {
        let t = &*self.f32;
        rng.fill_with(words, |r| {
            let lo = (t[(r & 0xFFFF) as usize] & 0xFFFF_0000) | ((r >> 16) & 0xFFFF) as u32;
            let hi = (t[((r >> 32) & 0xFFFF) as usize] & 0xFFFF_0000) | (r >> 48) as u32;
            (u64::from(lo) | u64::from(hi) << 32).to_le()
        });
    }
}

/// The bytes of `words` as they are in memory (little-endian values, as
/// the fills above store them).
pub(crate) fn as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: u8 has no alignment or validity requirement and the length
    // is exactly the words' size, within the same allocation; the borrow
    // keeps `words` alive and unaliased by writers.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

/// float32 -> bfloat16 bits, rounding to nearest even (NaN stays NaN).
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// bfloat16 bits -> float32.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Φ⁻¹(p) for 0 < p < 1: Acklam's rational approximation (relative error
/// below 1.2e-9, far finer than bf16 or f32 resolve here).
pub(crate) fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_cdf_matches_known_quantiles() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.025, -1.959_963_984_540_054),
            (0.841_344_746_068_543, 1.0),
            (1e-5, -4.264_890_793_922_602),
        ] {
            assert!((inverse_normal_cdf(p) - z).abs() < 1e-7, "p={p}");
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3F80);
        assert_eq!(f32_to_bf16(-2.0), 0xC000);
        // 1 + 2^-8 is halfway between two bf16 values: rounds to even (1.0).
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), 0x3F80);
        // 1 + 3 * 2^-8 is halfway too: rounds up to the even neighbour.
        assert_eq!(f32_to_bf16(1.0 + 3.0 / 256.0), 0x3F82);
        assert_eq!(bf16_to_f32(0x3F80), 1.0);
    }

    #[test]
    fn samples_have_the_requested_mean_and_spread() {
        let sampler = Sampler::new(Normal {
            mean: 0.0,
            std: 0.02,
        });
        let mut rng = Xoshiro::new(7, 0);
        let mut words = vec![0u64; 1 << 15];
        sampler.fill_bf16(&mut rng, &mut words);
        let values: Vec<f64> = as_bytes(&words)
            .chunks_exact(2)
            .map(|c| f64::from(bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))))
            .collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.001, "mean {mean}");
        assert!((std - 0.02).abs() < 0.001, "std {std}");

        sampler.fill_f32(&mut rng, &mut words);
        let values: Vec<f64> = as_bytes(&words)
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 0.001, "mean {mean}");
        assert!((std - 0.02).abs() < 0.001, "std {std}");
    }
}
