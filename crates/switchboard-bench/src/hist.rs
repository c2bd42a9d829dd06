//! A log-linear latency histogram in the spirit of HdrHistogram: exact below 256 ns, then 128
//! buckets per power of two, so any recorded value is reported within 0.8 %. Recording is one
//! array increment, cheap enough to do on every streamed delta.

/// Values below this are counted exactly.
const LINEAR: u64 = 256;
/// Buckets per power of two above `LINEAR`.
const PER_OCTAVE: u64 = 128;
/// Octaves 8..=63 of a `u64`.
const BUCKETS: usize = (LINEAR + (64 - 8) * PER_OCTAVE) as usize;

/// Nanosecond values, counted in log-linear buckets.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

fn bucket_of(value: u64) -> usize {
    if value < LINEAR {
        return value as usize;
    }
    let octave = 63 - u64::from(value.leading_zeros()); // >= 8
    let mantissa = value >> (octave - 7); // in [128, 256)
    (LINEAR + (octave - 8) * PER_OCTAVE + (mantissa - PER_OCTAVE)) as usize
}

/// The middle of the values that land in `bucket`.
fn value_of(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < LINEAR {
        return bucket;
    }
    let octave = (bucket - LINEAR) / PER_OCTAVE + 8;
    let mantissa = (bucket - LINEAR) % PER_OCTAVE + PER_OCTAVE;
    let width = 1u64 << (octave - 7);
    (mantissa << (octave - 7)) + width / 2
}

impl Histogram {
    /// Counts one value in nanoseconds.
    pub fn record(&mut self, nanos: u64) {
        self.counts[bucket_of(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    /// Adds every value counted in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.0..=1.0) in nanoseconds; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return value_of(bucket).min(self.max);
            }
        }
        self.max
    }
}

/// Exact quantile of raw samples (sorted in place), for the phases that keep every sample.
pub fn exact_quantile(samples: &mut [u64], q: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_values_within_one_percent() {
        for value in [
            0,
            1,
            255,
            256,
            257,
            1_000,
            12_345,
            987_654_321,
            u64::MAX / 3,
        ] {
            let back = value_of(bucket_of(value));
            let error = back.abs_diff(value) as f64 / value.max(1) as f64;
            assert!(error <= 0.008, "{value} -> {back}");
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5_000_000.0).abs() / 5_000_000.0 < 0.01, "{p50}");
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.len(), 10_000);
        let mut raw: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(exact_quantile(&mut raw, 0.99), 99);
    }
}
