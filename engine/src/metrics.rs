//! Counters and histograms of the runtime (transitions, timer lateness, outbox), rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds, safe to update from many tasks.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations in micro-units, to keep it an integer.
    sum_micros: AtomicU64,
    count: AtomicU64,
    max_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
            max_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let value = value.max(0.0);
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        let micros = (value * 1e6) as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The mean of all observations, or zero.
    pub fn mean(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6 / n as f64
        }
    }

    pub fn max(&self) -> f64 {
        self.max_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// Seconds.
const LATENESS_BOUNDS: &[f64] = &[
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0,
];
/// Seconds.
const COMMIT_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Commands per batch.
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The runtime's figures.
#[derive(Debug)]
pub struct Metrics {
    pub transitions: AtomicU64,
    pub rejected: AtomicU64,
    pub cases_opened: AtomicU64,
    pub timers_fired: AtomicU64,
    pub timers_skipped: AtomicU64,
    pub outbox_delivered: AtomicU64,
    pub outbox_failed: AtomicU64,
    pub outbox_dead: AtomicU64,
    pub store_errors: AtomicU64,
    /// How late timers fire: time of firing minus due time.
    pub timer_lateness: Histogram,
    /// Time to apply and commit one batch.
    pub commit_seconds: Histogram,
    pub batch_size: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            transitions: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            cases_opened: AtomicU64::new(0),
            timers_fired: AtomicU64::new(0),
            timers_skipped: AtomicU64::new(0),
            outbox_delivered: AtomicU64::new(0),
            outbox_failed: AtomicU64::new(0),
            outbox_dead: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            timer_lateness: Histogram::new(LATENESS_BOUNDS),
            commit_seconds: Histogram::new(COMMIT_BOUNDS),
            batch_size: Histogram::new(BATCH_BOUNDS),
        }
    }
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every figure, with `extra` gauges appended.
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        for (name, help, counter) in [
            (
                "anju_transitions_total",
                "Case transitions committed.",
                &self.transitions,
            ),
            (
                "anju_commands_rejected_total",
                "Commands refused (invalid, forbidden, illegal, stale).",
                &self.rejected,
            ),
            (
                "anju_cases_opened_total",
                "Cases opened from inspection findings.",
                &self.cases_opened,
            ),
            (
                "anju_timers_fired_total",
                "Timers fired.",
                &self.timers_fired,
            ),
            (
                "anju_timers_skipped_total",
                "Claimed timers found already fired or cancelled.",
                &self.timers_skipped,
            ),
            (
                "anju_outbox_delivered_total",
                "Deliveries sent (a message to one person on one channel).",
                &self.outbox_delivered,
            ),
            (
                "anju_outbox_failed_total",
                "Delivery attempts that failed and will be tried again.",
                &self.outbox_failed,
            ),
            (
                "anju_outbox_dead_total",
                "Deliveries given up after their last attempt (dead letters).",
                &self.outbox_dead,
            ),
            (
                "anju_store_errors_total",
                "Batches lost to a database error.",
                &self.store_errors,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", Metrics::get(counter));
        }
        self.timer_lateness.render(
            &mut out,
            "anju_timer_lateness_seconds",
            "How long after its due time a timer fired.",
        );
        let _ = writeln!(
            out,
            "# HELP anju_timer_lateness_max_seconds The latest any timer fired."
        );
        let _ = writeln!(out, "# TYPE anju_timer_lateness_max_seconds gauge");
        let _ = writeln!(
            out,
            "anju_timer_lateness_max_seconds {}",
            self.timer_lateness.max()
        );
        self.commit_seconds.render(
            &mut out,
            "anju_commit_seconds",
            "Time to apply and durably commit one batch of commands.",
        );
        self.batch_size
            .render(&mut out, "anju_batch_size", "Commands per committed batch.");
        for (name, help, value) in extra {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_max_is_kept() {
        let h = Histogram::new(&[1.0, 10.0]);
        h.observe(0.5);
        h.observe(5.0);
        h.observe(50.0);
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_sum 55.5\n"), "{out}");
        assert_eq!(h.max(), 50.0);
    }
}
