//! What is measured: the three rows of the seed table, scaled to what this
//! machine can offer, and the sweep that raises the offered packet rate
//! until the relay loses more than 0.1 %.
//!
//! The sweep runs each relay under the same CPU budget (`--relay-cpu-limit`,
//! [`DEFAULT_SWEEP_CPU_LIMIT`]): on a small machine an unlimited relay
//! outlasts the load generator, and the sweep would find the generator's
//! limit. Every step records whether it was generator-bound, so a rate the
//! generator could not exceed is never reported as the relay's limit.
//!
//! Scaling changes only the number of sessions; each session keeps the
//! seed's shape (bitrate and payload), so the per-packet work is the same as
//! at full scale and CPU-µs per relayed packet stays comparable.

use serde::Serialize;

use crate::load::LoadShape;
use crate::runner::RunResult;

/// One row of the seed table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Row {
    pub number: u8,
    pub sessions: u32,
    pub kbps: u32,
    pub payload: u32,
    /// Share of the sessions this 2-core machine offers by default: the
    /// generator gets one core and must stay below saturation.
    pub default_scale: f64,
}

pub const ROWS: [Row; 3] = [
    Row {
        number: 1,
        sessions: 2000,
        kbps: 50,
        payload: 150,
        default_scale: 0.25,
    },
    Row {
        number: 2,
        sessions: 2000,
        kbps: 50,
        payload: 1200,
        default_scale: 0.25,
    },
    Row {
        number: 3,
        sessions: 1000,
        kbps: 1500,
        payload: 1200,
        default_scale: 0.1,
    },
];

/// How long each phase of a run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timing {
    pub duration_secs: u32,
    pub warmup_secs: u32,
    pub ramp_up_secs: u32,
}

impl Timing {
    pub fn rows(quick: bool) -> Timing {
        if quick {
            Timing {
                duration_secs: 3,
                warmup_secs: 1,
                ramp_up_secs: 1,
            }
        } else {
            Timing {
                duration_secs: 10,
                warmup_secs: 2,
                ramp_up_secs: 1,
            }
        }
    }

    pub fn sweep(quick: bool) -> Timing {
        if quick {
            Timing {
                duration_secs: 2,
                warmup_secs: 1,
                ramp_up_secs: 1,
            }
        } else {
            Timing {
                duration_secs: 5,
                warmup_secs: 1,
                ramp_up_secs: 1,
            }
        }
    }
}

impl Row {
    pub fn scaled_sessions(&self, scale: f64) -> u32 {
        ((f64::from(self.sessions) * scale).round() as u32).max(1)
    }

    pub fn shape(&self, scale: f64, timing: Timing) -> LoadShape {
        LoadShape {
            sessions: self.scaled_sessions(scale),
            payload: self.payload,
            kbps: self.kbps,
            duration_secs: timing.duration_secs,
            warmup_secs: timing.warmup_secs,
            ramp_up_secs: timing.ramp_up_secs,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} × {} kbps × {} B",
            self.sessions, self.kbps, self.payload
        )
    }
}

pub fn row(number: u8) -> Option<Row> {
    ROWS.iter().copied().find(|r| r.number == number)
}

/// The sweep's shape per session: row 1's (50 kbps × 150 B, the highest
/// packet rate per bit).
pub const SWEEP_KBPS: u32 = 50;
pub const SWEEP_PAYLOAD: u32 = 150;

/// Session counts of the sweep's steps (each step 41.7 × 2 relayed pps per
/// session). Steps are 50 sessions (4.2 k relayed pps) apart up to 800
/// sessions (67 k pps), where budget-limited relays find their limits, and
/// coarser above.
pub fn sweep_sessions(quick: bool) -> Vec<u32> {
    if quick {
        vec![25, 100, 400]
    } else {
        let mut steps: Vec<u32> = (1..=16).map(|i| i * 50).collect();
        steps.extend([1000, 1300, 1600, 2000, 2500, 3000, 4000, 5000]);
        steps
    }
}

/// The CPU budget of every relay in a sweep, in cores, unless
/// `--relay-cpu-limit` says otherwise. Chosen by measurement on the 2-core
/// machine of docs/benchmarks.md, where the generator on one core reaches
/// ~67-83 k relayed pps: at 0.15 core coTURN used its whole budget from
/// ~12 k relayed pps on and lost packets above ~38 k, uturn-uring used it
/// from ~46 k and lost above ~54 k; at 0.25 core uturn-uring still had a
/// third of its budget left at 50 k, so its limit would lie at or beyond
/// the generator's.
pub const DEFAULT_SWEEP_CPU_LIMIT: f64 = 0.15;

pub fn sweep_shape(sessions: u32, timing: Timing) -> LoadShape {
    LoadShape {
        sessions,
        payload: SWEEP_PAYLOAD,
        kbps: SWEEP_KBPS,
        duration_secs: timing.duration_secs,
        warmup_secs: timing.warmup_secs,
        ramp_up_secs: timing.ramp_up_secs,
    }
}

/// Loss above which the sweep stops (0.1 %).
pub const SWEEP_LOSS_LIMIT: f64 = 0.001;

/// Why a sweep ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SweepStop {
    /// The relay lost more than 0.1 % with its cores saturated: its limit
    /// was found.
    RelayLoss,
    /// More than 0.1 % was lost but the relay's cores were not saturated:
    /// the loss is on the generator's side of this machine (its core, the
    /// kernel's softirq work there), so the relay's limit is higher.
    LossRelayNotSaturated,
    /// The generator used more than ~85 % of its core: the relay's limit is
    /// above what this machine can offer.
    GeneratorSaturated,
    /// Every step passed.
    StepsExhausted,
    /// A step failed to run.
    Failed(String),
}

/// What limited one sweep step, as the report marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StepBound {
    /// The generator's cores were saturated: the offered rate may not have
    /// been delivered, and any loss may be the generator's.
    Generator,
    /// The relay used (nearly) all of its CPU (budget).
    Relay,
    /// Neither was saturated.
    Neither,
}

/// Classifies a step. Generator saturation wins: with the generator at its
/// limit, nothing can be concluded about the relay.
pub fn step_bound(step: &RunResult, relay_cores: usize) -> StepBound {
    if step.generator_saturated {
        StepBound::Generator
    } else if relay_at_limit(step, relay_cores) {
        StepBound::Relay
    } else {
        StepBound::Neither
    }
}

/// Whether the relay used (nearly) all its CPU (budget) in `step`,
/// whatever the generator did.
pub fn relay_at_limit(step: &RunResult, relay_cores: usize) -> bool {
    step.figures
        .relay_saturated(budgeted_pct(step), relay_cores)
}

/// The relay CPU % to hold against its cores or budget: a budget limits
/// the process and, with threaded NAPI, its relay-side NAPI threads (which
/// are in its cgroup), never softirq work, so under one exactly that
/// counts.
fn budgeted_pct(step: &RunResult) -> f64 {
    if step.figures.budget_cores.is_some() {
        step.figures.relay_pct + step.figures.relay_napi_pct.unwrap_or(0.0)
    } else {
        step.headline_pct()
    }
}

/// Whether the sweep continues after `step`, and if not, why.
/// `relay_cores` is how many CPUs the relay was pinned to.
///
/// Loss ends the sweep, and what bound the lossy step says whose limit it
/// was. Without loss, a generator whose CPU is saturated ends it too (higher
/// steps cannot be offered); one that only fell behind its schedule (other
/// processes took its core for a moment) does not: the step is marked and
/// the sweep goes on.
pub fn sweep_next(step: &RunResult, relay_cores: usize) -> Option<SweepStop> {
    let established_all = step.summary.sessions_established >= u64::from(step.shape.sessions);
    let lossy = step.summary.loss_ratio > SWEEP_LOSS_LIMIT || !established_all;
    match (step_bound(step, relay_cores), lossy) {
        (StepBound::Generator, true) => Some(SweepStop::GeneratorSaturated),
        (StepBound::Relay, true) => Some(SweepStop::RelayLoss),
        (StepBound::Neither, true) => Some(SweepStop::LossRelayNotSaturated),
        (_, false) if step.figures.generator_cpu_saturated() => Some(SweepStop::GeneratorSaturated),
        (_, false) => None,
    }
}

/// The result of a sweep for one relay.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub relay: String,
    pub steps: Vec<RunResult>,
    pub stop: SweepStop,
}

impl Sweep {
    /// The highest measured relayed packet rate of a step with at most 0.1 %
    /// loss and all sessions established.
    pub fn max_ok_relayed_pps(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter(|s| {
                s.summary.loss_ratio <= SWEEP_LOSS_LIMIT
                    && s.summary.sessions_established >= u64::from(s.shape.sessions)
            })
            .map(RunResult::relayed_pps)
            .fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
    }

    /// Whether [`Sweep::max_ok_relayed_pps`] is the relay's own limit: the
    /// sweep ended with the relay saturated and losing. Otherwise the
    /// relay's limit is at least that rate and the report says so.
    pub fn found_relay_limit(&self) -> bool {
        self.stop == SweepStop::RelayLoss
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::tests::result_with;

    #[test]
    fn rows_match_the_seed_table() {
        let r: Vec<_> = ROWS
            .iter()
            .map(|r| (r.sessions, r.kbps, r.payload))
            .collect();
        assert_eq!(r, [(2000, 50, 150), (2000, 50, 1200), (1000, 1500, 1200)]);
        assert_eq!(row(3).unwrap().number, 3);
        assert!(row(4).is_none());
    }

    #[test]
    fn scaling_changes_sessions_not_shape() {
        let r = row(3).unwrap();
        let s = r.shape(0.1, Timing::rows(false));
        assert_eq!((s.sessions, s.kbps, s.payload), (100, 1500, 1200));
        assert_eq!(s.duration_secs, 10);
        assert_eq!(row(1).unwrap().scaled_sessions(0.0001), 1);
        assert_eq!(row(1).unwrap().scaled_sessions(1.0), 2000);
    }

    #[test]
    fn sweep_steps_rise() {
        for quick in [true, false] {
            let s = sweep_sessions(quick);
            assert!(s.windows(2).all(|w| w[0] < w[1]));
        }
        let s = sweep_sessions(false);
        assert_eq!(s[..3], [50, 100, 150]);
        assert_eq!(s.last(), Some(&5000));
    }

    #[test]
    fn under_a_budget_saturation_is_judged_against_the_budget() {
        // 20 % of a core, no loss, idle generator.
        let mut step = result_with(300, 0.0, 50.0, 25_000.0);
        assert_eq!(step_bound(&step, 1), StepBound::Neither);
        step.figures.budget_cores = Some(0.2);
        assert_eq!(step_bound(&step, 1), StepBound::Relay);
        assert_eq!(sweep_next(&step, 1), None, "no loss: go on");
        step.summary.loss_ratio = 0.01;
        assert_eq!(sweep_next(&step, 1), Some(SweepStop::RelayLoss));
        // Under a budget only the process counts, not softirq (XDP).
        step.counts_softirq = true;
        step.figures.relay_pct = 5.0;
        step.figures.softirq_pct = 90.0;
        assert_eq!(step_bound(&step, 1), StepBound::Neither);
        // A generator-bound step overrides everything: its loss is not the
        // relay's limit.
        step.figures.relay_pct = 20.0;
        step.generator_saturated = true;
        assert_eq!(step_bound(&step, 1), StepBound::Generator);
        assert_eq!(sweep_next(&step, 1), Some(SweepStop::GeneratorSaturated));
        // Without loss, a generator that only fell behind (its CPU not
        // saturated) lets the sweep go on; a saturated one ends it.
        step.summary.loss_ratio = 0.0;
        step.figures.generator_pct = Some(40.0);
        assert_eq!(step_bound(&step, 1), StepBound::Generator);
        assert_eq!(sweep_next(&step, 1), None);
        step.figures.generator_pct = Some(90.0);
        assert_eq!(sweep_next(&step, 1), Some(SweepStop::GeneratorSaturated));
    }

    #[test]
    fn sweep_stops_on_loss_or_generator_saturation() {
        let ok = result_with(100, 0.0, 50.0, 10_000.0);
        assert_eq!(sweep_next(&ok, 1), None);
        // result_with's relay uses 20 % of a core: not saturated.
        let lossy = result_with(200, 0.002, 50.0, 20_000.0);
        assert_eq!(
            sweep_next(&lossy, 1),
            Some(SweepStop::LossRelayNotSaturated)
        );
        let mut busy = lossy.clone();
        busy.figures.relay_pct = 97.0;
        assert_eq!(sweep_next(&busy, 1), Some(SweepStop::RelayLoss));
        // On two cores 97 % is half busy.
        assert_eq!(sweep_next(&busy, 2), Some(SweepStop::LossRelayNotSaturated));
        let saturated = result_with(300, 0.0, 95.0, 30_000.0);
        assert_eq!(
            sweep_next(&saturated, 1),
            Some(SweepStop::GeneratorSaturated)
        );

        let sweep = Sweep {
            relay: "x".into(),
            steps: vec![ok, saturated, lossy],
            stop: SweepStop::RelayLoss,
        };
        // The lossy step is faster but does not count.
        assert_eq!(sweep.max_ok_relayed_pps(), Some(30_000.0));
        assert!(sweep.found_relay_limit());
        let empty = Sweep {
            relay: "x".into(),
            steps: vec![],
            stop: SweepStop::Failed("x".into()),
        };
        assert_eq!(empty.max_ok_relayed_pps(), None);
        assert!(!empty.found_relay_limit());
    }
}
