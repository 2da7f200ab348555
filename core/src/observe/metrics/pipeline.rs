//! The pipeline metric families (DESIGN.md's names) and the handles one stage or pipeline uses,
//! resolved when a registry snapshot is built, never per call.

use std::time::Duration;

use prometheus::{Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

/// Stage and pipeline duration buckets, in seconds: 100 µs to 10 s.
const BUCKETS: &[f64] =
    &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How a stage call ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    /// Continue or modified.
    Ok,
    /// Denied.
    Deny,
    /// An error result, a malformed result, a panic or a transport failure.
    Error,
    /// Its time ran out.
    Timeout,
    /// Its breaker was open: not called.
    CircuitOpen,
}

impl CallOutcome {
    const ALL: [CallOutcome; 5] = [
        CallOutcome::Ok,
        CallOutcome::Deny,
        CallOutcome::Error,
        CallOutcome::Timeout,
        CallOutcome::CircuitOpen,
    ];

    fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Deny => "deny",
            CallOutcome::Error => "error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::CircuitOpen => "circuit_open",
        }
    }
}

/// How a pipeline run ended (`pipeline_requests_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunOutcome {
    /// 200, nothing skipped.
    Ok,
    /// 200 with a fail-open stage skipped.
    Degraded,
    /// 422.
    Denied,
    /// 503: a fail-closed stage failed, or no provider answered.
    Unavailable,
    /// 504.
    DeadlineExceeded,
}

impl RunOutcome {
    const ALL: [RunOutcome; 5] = [
        RunOutcome::Ok,
        RunOutcome::Degraded,
        RunOutcome::Denied,
        RunOutcome::Unavailable,
        RunOutcome::DeadlineExceeded,
    ];

    fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::Degraded => "degraded",
            RunOutcome::Denied => "denied",
            RunOutcome::Unavailable => "unavailable",
            RunOutcome::DeadlineExceeded => "deadline_exceeded",
        }
    }
}

/// The families, registered in the host's registry.
#[derive(Debug, Clone)]
pub(crate) struct PipelineFamilies {
    requests: IntCounterVec,
    duration: HistogramVec,
    calls: IntCounterVec,
    call_duration: HistogramVec,
    score: GaugeVec,
    circuit: GaugeVec,
    reloads: IntCounterVec,
}

fn definition<T>(r: Result<T, prometheus::Error>) -> T {
    r.expect("static metric definition")
}

impl PipelineFamilies {
    pub(super) fn new() -> Self {
        Self {
            requests: definition(IntCounterVec::new(
                Opts::new("pipeline_requests_total", "Pipeline runs by outcome"),
                &["pipeline", "outcome"],
            )),
            duration: definition(HistogramVec::new(
                HistogramOpts::new("pipeline_duration_seconds", "Time to run a pipeline")
                    .buckets(BUCKETS.to_vec()),
                &["pipeline"],
            )),
            calls: definition(IntCounterVec::new(
                Opts::new("pipeline_stage_calls_total", "Stage calls by outcome"),
                &["stage", "kind", "outcome"],
            )),
            call_duration: definition(HistogramVec::new(
                HistogramOpts::new("pipeline_stage_duration_seconds", "Time of one stage call")
                    .buckets(BUCKETS.to_vec()),
                &["stage", "kind"],
            )),
            score: definition(GaugeVec::new(
                Opts::new("pipeline_stage_health_score", "Successful share of a stage's recent calls"),
                &["stage"],
            )),
            circuit: definition(GaugeVec::new(
                Opts::new("pipeline_stage_circuit_open", "1 while a stage's circuit breaker is open"),
                &["stage"],
            )),
            reloads: definition(IntCounterVec::new(
                Opts::new("pipeline_registry_reloads_total", "Registry snapshot reloads by result"),
                &["result"],
            )),
        }
    }

    pub(super) fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.duration.clone()),
            Box::new(self.calls.clone()),
            Box::new(self.call_duration.clone()),
            Box::new(self.score.clone()),
            Box::new(self.circuit.clone()),
            Box::new(self.reloads.clone()),
        ]
    }

    /// One stage's handles.
    pub(crate) fn stage(&self, stage: &str, kind: &str) -> StageHandles {
        let calls = CallOutcome::ALL.map(|o| self.calls.with_label_values(&[stage, kind, o.as_str()]));
        StageHandles {
            calls,
            duration: self.call_duration.with_label_values(&[stage, kind]),
            score: self.score.with_label_values(&[stage]),
            circuit: self.circuit.with_label_values(&[stage]),
        }
    }

    /// One pipeline's handles.
    pub(crate) fn pipeline(&self, name: &str) -> PipelineHandles {
        PipelineHandles {
            runs: RunOutcome::ALL.map(|o| self.requests.with_label_values(&[name, o.as_str()])),
            duration: self.duration.with_label_values(&[name]),
        }
    }

    /// Counts a reload: `ok`, `refused` (validation) or `failed` (the database).
    pub(crate) fn reload(&self, result: &str) {
        self.reloads.with_label_values(&[result]).inc();
    }
}

/// One stage's handles.
#[derive(Debug, Clone)]
pub(crate) struct StageHandles {
    calls: [IntCounter; 5],
    duration: Histogram,
    score: Gauge,
    circuit: Gauge,
}

impl StageHandles {
    /// Counts one call (a breaker refusal too, with no duration).
    pub(crate) fn call(&self, outcome: CallOutcome, elapsed: Option<Duration>) {
        let i = CallOutcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.calls[i].inc();
        if let Some(d) = elapsed {
            self.duration.observe(d.as_secs_f64());
        }
    }

    /// Sets the health gauges.
    pub(crate) fn health(&self, score: f64, open: bool) {
        self.score.set(score);
        self.circuit.set(if open { 1.0 } else { 0.0 });
    }
}

/// One pipeline's handles.
#[derive(Debug, Clone)]
pub(crate) struct PipelineHandles {
    runs: [IntCounter; 5],
    duration: Histogram,
}

impl PipelineHandles {
    /// Counts one run.
    pub(crate) fn run(&self, outcome: RunOutcome, elapsed: Duration) {
        let i = RunOutcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.runs[i].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}
