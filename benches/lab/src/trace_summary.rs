//! Where a traced run's time went, in a few lines of text: the critical path (the chain of tasks,
//! each made by the one before it, that ended last), split into time running bodies and time
//! between a task's maker ending and the task starting; how busy the tracks were; each task
//! type's run times and waits. For the design record's rule "measure where each case's time goes
//! before designing": a GPU call brings back text, and this is the text of a trace.

use std::collections::HashMap;
use std::fmt;

use grosr::Trace;
use grosr::trace::TaskSpan;

/// Medians and tails of a set of durations, in µs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    /// How many.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest.
    pub max: f64,
    /// Sum.
    pub total: f64,
}

impl Spread {
    /// The spread of `ns` (nanoseconds).
    pub fn of(mut ns: Vec<u64>) -> Spread {
        if ns.is_empty() {
            return Spread::default();
        }
        ns.sort_unstable();
        let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        Spread {
            count: ns.len(),
            p50: at(0.5),
            p90: at(0.9),
            max: at(1.0),
            total: ns.iter().sum::<u64>() as f64 / 1000.0,
        }
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>7} × median {:>8.3} µs, p90 {:>8.3}, max {:>8.3}",
            self.count, self.p50, self.p90, self.max
        )
    }
}

/// One task type's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct KindSummary {
    /// Its name.
    pub name: String,
    /// How long its bodies ran.
    pub run: Spread,
    /// From its maker's end (a task or a host call) to its start; a task that started before
    /// its maker ended (a spawn) counts 0.
    pub wait: Spread,
}

/// What [`summarize`] finds.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Tasks in the trace.
    pub tasks: usize,
    /// Events the trace did not keep.
    pub dropped: u64,
    /// First task's start to last task's end, µs.
    pub span_us: f64,
    /// Tracks that ran a task.
    pub tracks: usize,
    /// Tasks running at once, on average over the span (their run time over the span).
    pub mean_running: f64,
    /// The most running at once.
    pub peak_running: usize,
    /// Tasks on the critical path.
    pub path_tasks: usize,
    /// Their run time on the path, µs: the last task's whole, each maker's until the task it
    /// made started.
    pub path_run_us: f64,
    /// The time between them (each one's start less its maker's end, when positive), µs.
    pub path_gaps_us: f64,
    /// From the host call that made the path's first task (if the trace has it) to that task's
    /// start, µs.
    pub path_lead_us: Option<f64>,
    /// Per task type, most run time first.
    pub kinds: Vec<KindSummary>,
    /// The host's calls: per kind of call ("submit", "wait", "graph run"), how long they took.
    pub host: Vec<(String, Spread)>,
    /// Per submit (or graph run) whose tasks the trace holds (those it made, and theirs): from
    /// the call's end to its first task's start, and from its last task's end to the end of the
    /// next wait of the same thread (the completion reaching the host).
    pub to_first_task: Spread,
    /// See `to_first_task`.
    pub last_task_to_return: Spread,
}

/// Summarizes `trace` (see the module docs).
pub fn summarize(trace: &Trace) -> Summary {
    let by_id: HashMap<u64, &TaskSpan> = trace.tasks.iter().map(|t| (t.id, t)).collect();
    let host_end: HashMap<u64, u64> = trace.host.iter().map(|h| (h.id, h.end_ns)).collect();
    let t0 = trace.tasks.iter().map(|t| t.start_ns).min().unwrap_or(0);
    let t1 = trace.tasks.iter().map(|t| t.end_ns).max().unwrap_or(0);
    let span = t1.saturating_sub(t0);
    let busy: u64 = trace.tasks.iter().map(|t| t.end_ns - t.start_ns).sum();
    // Running at once: +1 at each start, -1 at each end (ends first at a tie).
    let mut steps: Vec<(u64, i32)> = trace
        .tasks
        .iter()
        .flat_map(|t| [(t.start_ns, 1), (t.end_ns, -1)])
        .collect();
    steps.sort_unstable();
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in steps {
        now += d;
        peak = peak.max(now);
    }
    let tracks = {
        let mut t: Vec<u32> = trace.tasks.iter().map(|t| t.track).collect();
        t.sort_unstable();
        t.dedup();
        t.len()
    };
    // The maker's end: a task's, or a host call's.
    let maker_end = |t: &TaskSpan| -> Option<u64> {
        by_id
            .get(&t.parent)
            .map(|p| p.end_ns)
            .or_else(|| host_end.get(&t.parent).copied())
    };
    let wait = |t: &TaskSpan| maker_end(t).map(|e| t.start_ns.saturating_sub(e));
    // The critical path: back from the task that ended last, through makers that are tasks.
    let mut path_tasks = 0;
    let (mut path_run, mut path_gaps) = (0u64, 0u64);
    let mut path_lead = None;
    let mut at = trace.tasks.iter().max_by_key(|t| (t.end_ns, t.id));
    // The last task runs whole on the path; each maker before it only until the task it made
    // started (a spawn can start before its maker ends: the overlap counts once).
    let mut until = u64::MAX;
    while let Some(t) = at {
        path_tasks += 1;
        path_run += t.end_ns.min(until).saturating_sub(t.start_ns);
        match by_id.get(&t.parent) {
            // A maker that started after the task (ids repeat across takes) ends the walk.
            Some(p) if p.start_ns <= t.start_ns && path_tasks <= trace.tasks.len() => {
                path_gaps += t.start_ns.saturating_sub(p.end_ns);
                until = t.start_ns;
                at = Some(p);
            }
            _ => {
                path_lead = trace
                    .host
                    .iter()
                    .find(|h| h.id == t.parent)
                    .map(|h| t.start_ns.saturating_sub(h.start_ns) as f64 / 1000.0);
                at = None;
            }
        }
    }
    let mut kinds: Vec<KindSummary> = (0..trace.task_names.len())
        .filter_map(|k| {
            let of: Vec<&TaskSpan> = trace
                .tasks
                .iter()
                .filter(|t| t.kind as usize == k)
                .collect();
            (!of.is_empty()).then(|| KindSummary {
                name: trace.task_names[k].to_string(),
                run: Spread::of(of.iter().map(|t| t.end_ns - t.start_ns).collect()),
                wait: Spread::of(of.iter().filter_map(|t| wait(t)).collect()),
            })
        })
        .collect();
    kinds.sort_by(|a, b| b.run.total.total_cmp(&a.run.total));
    let mut whats: Vec<&str> = trace.host.iter().map(|h| h.what).collect();
    whats.sort_unstable();
    whats.dedup();
    let host = whats
        .into_iter()
        .map(|w| {
            let d = trace.host.iter().filter(|h| h.what == w);
            (
                w.to_string(),
                Spread::of(d.map(|h| h.end_ns - h.start_ns).collect()),
            )
        })
        .collect();
    // Each task's host call (through the tasks that made it), then per call the first start
    // and the last end of its tasks.
    let mut call_of: HashMap<u64, Option<u64>> = HashMap::new();
    let mut of_call: HashMap<u64, (u64, u64)> = HashMap::new();
    for t in &trace.tasks {
        let mut chain = Vec::new();
        let mut at = t;
        let call = loop {
            if let Some(&c) = call_of.get(&at.id) {
                break c;
            }
            chain.push(at.id);
            if host_end.contains_key(&at.parent) {
                break Some(at.parent);
            }
            match by_id.get(&at.parent) {
                // Makers start first; a bound on the walk all the same (ids repeat across takes).
                Some(p) if p.start_ns <= at.start_ns && chain.len() <= trace.tasks.len() => at = p,
                _ => break None,
            }
        };
        for id in chain {
            call_of.insert(id, call);
        }
        if let Some(c) = call {
            let e = of_call.entry(c).or_insert((u64::MAX, 0));
            *e = (e.0.min(t.start_ns), e.1.max(t.end_ns));
        }
    }
    let (mut to_first, mut to_return) = (Vec::new(), Vec::new());
    for h in trace.host.iter().filter(|h| h.what != "wait") {
        let Some(&(first, last)) = of_call.get(&h.id) else {
            continue;
        };
        to_first.push(first.saturating_sub(h.end_ns));
        // The thread's next wait that ended after the last task.
        if let Some(w) = trace
            .host
            .iter()
            .filter(|w| w.what == "wait" && w.thread == h.thread && w.job == h.job)
            .filter(|w| w.start_ns >= h.start_ns)
            .filter(|w| w.end_ns >= last)
            .min_by_key(|w| w.end_ns)
        {
            to_return.push(w.end_ns - last);
        }
    }
    Summary {
        tasks: trace.tasks.len(),
        dropped: trace.dropped,
        span_us: span as f64 / 1000.0,
        tracks,
        mean_running: if span == 0 {
            0.0
        } else {
            busy as f64 / span as f64
        },
        peak_running: peak.max(0) as usize,
        path_tasks,
        path_run_us: path_run as f64 / 1000.0,
        path_gaps_us: path_gaps as f64 / 1000.0,
        path_lead_us: path_lead,
        kinds,
        host,
        to_first_task: Spread::of(to_first),
        last_task_to_return: Spread::of(to_return),
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} tasks ({} dropped) over {:.1} µs on {} tracks: {:.1} running on average, {} at most",
            self.tasks,
            self.dropped,
            self.span_us,
            self.tracks,
            self.mean_running,
            self.peak_running
        )?;
        write!(
            f,
            "critical path: {} tasks, {:.1} µs running, {:.1} µs between them",
            self.path_tasks, self.path_run_us, self.path_gaps_us
        )?;
        match self.path_lead_us {
            Some(l) => writeln!(f, ", {l:.1} µs from its host call to its first task")?,
            None => writeln!(f)?,
        }
        for k in &self.kinds {
            writeln!(f, "  {:<16} run  {}", k.name, k.run)?;
            writeln!(f, "  {:<16} wait {}", "", k.wait)?;
        }
        for (what, d) in &self.host {
            writeln!(f, "  host {:<11} {}", what, d)?;
        }
        if self.to_first_task.count > 0 {
            writeln!(f, "  call → 1st task {}", self.to_first_task)?;
        }
        if self.last_task_to_return.count > 0 {
            writeln!(f, "  last → returned {}", self.last_task_to_return)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grosr::trace::HostSpan;

    fn task(id: u64, parent: u64, kind: u32, track: u32, start_ns: u64, end_ns: u64) -> TaskSpan {
        TaskSpan {
            id,
            parent,
            kind,
            node: None,
            job: 0,
            track,
            start_ns,
            end_ns,
        }
    }

    /// A submit (host span 100) makes task 1; 1 makes 2 and 3 (3 after a wait); 3 makes 4, the
    /// last to end. The path is 1 → 3 → 4.
    #[test]
    fn the_path_runs_back_from_the_last_task_through_its_makers() {
        let trace = Trace {
            tasks: vec![
                task(1, 100, 0, 0, 1_000, 2_000),
                task(2, 1, 1, 1, 2_500, 3_000),
                task(3, 1, 1, 0, 5_000, 6_000),
                task(4, 3, 0, 1, 6_500, 9_000),
            ],
            host: vec![HostSpan {
                id: 100,
                what: "submit",
                thread: "main".into(),
                job: 0,
                start_ns: 0,
                end_ns: 500,
            }],
            task_names: vec!["A", "B"],
            ..Trace::default()
        };
        let s = summarize(&trace);
        assert_eq!((s.tasks, s.tracks, s.peak_running), (4, 2, 1));
        assert_eq!(s.span_us, 8.0);
        assert_eq!(s.mean_running, 5000.0 / 8000.0);
        assert_eq!(s.path_tasks, 3);
        assert_eq!((s.path_run_us, s.path_gaps_us), (4.5, 3.5));
        assert_eq!(s.path_lead_us, Some(1.0));
        // A ran 1 + 2.5 µs, B 0.5 + 1: A first. A's waits: 0.5 (from the submit's end), 0.5.
        assert_eq!(s.kinds[0].name, "A");
        assert_eq!(s.kinds[0].run.total, 3.5);
        assert_eq!(s.kinds[0].wait.count, 2);
        assert_eq!(s.kinds[1].wait.max, 3.0);
        assert!(s.to_string().contains("critical path: 3 tasks"));
        // The submit's one direct task started 0.5 µs after the submit returned; no wait span.
        assert_eq!(s.host, vec![("submit".to_string(), Spread::of(vec![500]))]);
        assert_eq!(s.to_first_task.p50, 0.5);
        assert_eq!(s.last_task_to_return.count, 0);
    }

    /// A submit, its task, then the thread's wait: the task starts 0.5 µs after the submit
    /// returned, and the wait returns 0.6 µs after the task ended.
    #[test]
    fn a_job_splits_into_submit_to_task_and_task_to_return() {
        let span = |id, what, start_ns, end_ns| HostSpan {
            id,
            what,
            thread: "t".into(),
            job: 0,
            start_ns,
            end_ns,
        };
        // Task 2, spawned by 1, ends last: the job's end.
        let trace = Trace {
            tasks: vec![
                task(1, 100, 0, 0, 1_000, 1_500),
                task(2, 1, 0, 0, 1_600, 2_000),
            ],
            host: vec![span(100, "submit", 0, 500), span(101, "wait", 600, 2_600)],
            task_names: vec!["A"],
            ..Trace::default()
        };
        let s = summarize(&trace);
        assert_eq!((s.to_first_task.count, s.to_first_task.p50), (1, 0.5));
        assert_eq!(
            (s.last_task_to_return.count, s.last_task_to_return.p50),
            (1, 0.6)
        );
        assert_eq!(s.host.len(), 2);
        assert!(s.to_string().contains("last → returned"));
    }

    /// A child that starts while its maker still runs: the overlap counts once on the path.
    #[test]
    fn a_spawn_before_its_makers_end_is_not_counted_twice() {
        let trace = Trace {
            tasks: vec![task(1, 0, 0, 0, 0, 1_000), task(2, 1, 0, 1, 300, 2_000)],
            task_names: vec!["A"],
            ..Trace::default()
        };
        let s = summarize(&trace);
        assert_eq!((s.path_tasks, s.path_run_us, s.path_gaps_us), (2, 2.0, 0.0));
        assert_eq!(s.span_us, 2.0);
    }

    #[test]
    fn an_empty_trace_summarizes_to_nothing() {
        let s = summarize(&Trace::default());
        assert_eq!((s.tasks, s.path_tasks, s.peak_running), (0, 0, 0));
        assert!(s.kinds.is_empty());
        assert_eq!(s.path_lead_us, None);
    }

    #[test]
    fn spreads_take_the_nearest_rank() {
        let s = Spread::of(vec![4_000, 1_000, 3_000, 2_000, 5_000]);
        assert_eq!(
            (s.count, s.p50, s.p90, s.max, s.total),
            (5, 3.0, 5.0, 5.0, 15.0)
        );
    }
}
