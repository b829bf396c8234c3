//! Latency statistics: nearest-rank percentiles over every recorded sample (no histogram
//! approximation; a bounded run keeps all its samples, 8 bytes each).

use serde::Serialize;

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Number of samples.
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
}

/// The nearest-rank percentile of sorted samples: the smallest sample such that at least
/// `pct` percent of the samples are less than or equal to it. `None` when there are no samples.
pub fn percentile(sorted: &[u64], pct: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let pct = pct.clamp(0.0, 100.0);
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sorts the samples (nanoseconds) in place and summarizes them.
pub fn summarize(samples: &mut [u64]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let sum: u128 = samples.iter().map(|&s| s as u128).sum();
    let at = |pct| ms(percentile(samples, pct).unwrap_or(0));
    Latency {
        count: samples.len(),
        mean_ms: sum as f64 / samples.len() as f64 / 1e6,
        p50_ms: at(50.0),
        p90_ms: at(90.0),
        p99_ms: at(99.0),
        max_ms: ms(samples[samples.len() - 1]),
        min_ms: ms(samples[0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50));
        assert_eq!(percentile(&sorted, 90.0), Some(90));
        assert_eq!(percentile(&sorted, 99.0), Some(99));
        assert_eq!(percentile(&sorted, 100.0), Some(100));
        assert_eq!(percentile(&sorted, 0.0), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        // Ten samples: p50 is the 5th, p90 the 9th, p99 the 10th.
        let ten: Vec<u64> = (10..20).collect();
        assert_eq!(percentile(&ten, 50.0), Some(14));
        assert_eq!(percentile(&ten, 90.0), Some(18));
        assert_eq!(percentile(&ten, 99.0), Some(19));
        // Out-of-range percentages are clamped.
        assert_eq!(percentile(&ten, 150.0), Some(19));
        assert_eq!(percentile(&ten, -3.0), Some(10));
    }

    #[test]
    fn summary_sorts_and_converts() {
        let mut samples = vec![3_000_000, 1_000_000, 2_000_000, 4_000_000];
        let s = summarize(&mut samples);
        assert_eq!(s.count, 4);
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p90_ms, 4.0);
        assert_eq!(s.p99_ms, 4.0);
        assert_eq!(s.max_ms, 4.0);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.mean_ms, 2.5);
        assert_eq!(summarize(&mut []), Latency::default());
    }
}
