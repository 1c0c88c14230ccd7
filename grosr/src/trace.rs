//! [`Trace`]: where a runtime's time went, task by task, as a timeline Perfetto opens.
//!
//! With [`RuntimeBuilder::trace`](crate::RuntimeBuilder::trace) set, the runtime records every
//! task it runs (its type, job, track, start and end, and what made it: the host submit, the
//! task that spawned it, or the graph node whose end released it), the host's submits and waits,
//! and how many tasks were queued and how many heap bytes were in use.
//! [`Runtime::trace`](crate::Runtime::trace) takes what was recorded so far;
//! [`Trace::to_chrome_json`] writes
//! Chrome's trace-event JSON, which <https://ui.perfetto.dev> (Open trace file) and
//! `chrome://tracing` open: a track per worker thread, a slice per task, flow arrows from each
//! task's origin to it, the host's calls on host tracks, counters below.
//!
//! On the CPU backend a track is a worker thread. On a GPU the scheduler records every task it
//! runs into rings in device memory, one per lane of each scheduler warp (a track per warp, and
//! per lane for lane tasks, which a round runs side by side), with its spawner as the origin;
//! the host's submits, waits and graph runs are stamped on the GPU's clock (set against
//! `%globaltimer` before each launch of the scheduler), and the take names the origins the GPU
//! does not record: a submitted task's submit, a graph node's predecessor whose end released it
//! (a root: its graph run). The queued-tasks counter is derived from the events there (a task
//! counts from its origin's end until it starts), and heap use is the heap's whole slabs in use,
//! sampled by the GPU whenever a slab leaves or rejoins its pool (the CPU backend counts the
//! bytes of live allocations). A task a cancel skipped leaves no event.

use std::fmt::Write as _;
use std::sync::Arc;

/// One task's run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSpan {
    /// The task's id in this trace (unique among tasks and host spans; never 0).
    pub id: u64,
    /// What made it: the id of the task that spawned it or whose end released it (a graph
    /// node's predecessor), or of the host span that submitted it; 0 when that was not recorded
    /// (on a GPU: children of dropped tasks, and tasks of a submit the trace did not see).
    pub parent: u64,
    /// Its type's index in [`Trace::task_names`].
    pub kind: u32,
    /// The graph node it ran ([`NodeId::index`](crate::graph::NodeId::index)), when it was
    /// one (on a GPU, a graph small enough to travel whole runs its nodes untagged: none).
    pub node: Option<u32>,
    /// Its job (an id shared by the job's tasks and host spans; on a GPU the job's slot, which
    /// later jobs reuse).
    pub job: u64,
    /// The track that ran it: a CPU worker, or a GPU warp and lane (a block task on its
    /// block's first warp and lane).
    pub track: u32,
    /// When it started and ended, in nanoseconds since the runtime was built (on a GPU, since
    /// the take's earliest task or host span).
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
}

/// A call of the host's on one of its threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpan {
    /// Unique among tasks and host spans; a submit's tasks name it as their parent.
    pub id: u64,
    /// `"submit"`, `"wait"` or `"graph run"`.
    pub what: &'static str,
    /// The host thread's name (or id).
    pub thread: String,
    /// The job it submitted or waited for (on a GPU, the job's slot, as [`TaskSpan::job`]).
    pub job: u64,
    /// Nanoseconds since the runtime was built (on a GPU, as [`TaskSpan::start_ns`]).
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
}

/// A sampled value: tasks queued, heap bytes in use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CounterSample {
    /// `"queued tasks"` or `"heap bytes"` (on a GPU, bytes of the heap's slabs in use, whole:
    /// 64 KiB each).
    pub name: &'static str,
    /// Nanoseconds since the runtime was built.
    pub at_ns: u64,
    /// The value then.
    pub value: f64,
}

/// What a runtime recorded: tasks, host calls, counters (see the [module](self) docs).
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Every recorded task, each track's in the order they ran.
    pub tasks: Vec<TaskSpan>,
    /// The host's calls.
    pub host: Vec<HostSpan>,
    /// Counter samples, in time order per counter.
    pub counters: Vec<CounterSample>,
    /// The tracks' names (index = [`TaskSpan::track`]).
    pub tracks: Vec<String>,
    /// Task type names (index = [`TaskSpan::kind`]).
    pub task_names: Vec<&'static str>,
    /// Events not recorded: tasks past a track's buffer (on a GPU: overwritten in their ring
    /// before the take, or still being written when it read them), host calls past the host
    /// log, and on a GPU heap samples past theirs
    /// ([`RuntimeBuilder::trace`](crate::RuntimeBuilder::trace) sets the sizes).
    pub dropped: u64,
}

/// The process id the JSON gives the runtime's tracks, and the host's.
const RUNTIME_PID: u32 = 1;
const HOST_PID: u32 = 2;

impl Trace {
    /// Chrome's trace-event JSON (the "JSON Object Format"): complete events (`"ph": "X"`) for
    /// tasks and host calls, flow events (`"s"`/`"f"`) from each task's origin to it, counter
    /// events (`"C"`), and names for the processes and threads. Times in microseconds.
    ///
    /// ```
    /// let trace = grosr::Trace::default();
    /// let json = trace.to_chrome_json();
    /// assert!(json.starts_with("{\"traceEvents\":["));
    /// ```
    pub fn to_chrome_json(&self) -> String {
        let mut out = String::from("{\"traceEvents\":[\n");
        let mut first = true;
        let mut event = |out: &mut String, e: String| {
            if !first {
                out.push_str(",\n");
            }
            first = false;
            out.push_str(&e);
        };
        let us = |ns: u64| ns as f64 / 1e3;
        event(
            &mut out,
            meta("process_name", RUNTIME_PID, None, "grosr runtime"),
        );
        event(&mut out, meta("process_name", HOST_PID, None, "host"));
        for (t, name) in self.tracks.iter().enumerate() {
            event(
                &mut out,
                meta("thread_name", RUNTIME_PID, Some(t as u64), name),
            );
        }
        let host_threads = self.host_threads();
        for (t, name) in host_threads.iter().enumerate() {
            event(
                &mut out,
                meta("thread_name", HOST_PID, Some(t as u64), name),
            );
        }
        // Where each id ran, for the flows' starts.
        let mut at = std::collections::HashMap::new();
        for t in &self.tasks {
            at.insert(t.id, (RUNTIME_PID, u64::from(t.track), t.start_ns));
        }
        for h in &self.host {
            let tid = host_threads
                .iter()
                .position(|n| *n == h.thread)
                .unwrap_or(0);
            at.insert(h.id, (HOST_PID, tid as u64, h.start_ns));
        }
        for h in &self.host {
            let (pid, tid, _) = at[&h.id];
            event(
                &mut out,
                format!(
                    "{{\"name\":{},\"cat\":\"host\",\"ph\":\"X\",\"ts\":{:.3},\"dur\":{:.3},\
                     \"pid\":{pid},\"tid\":{tid},\"args\":{{\"job\":{},\"id\":{}}}}}",
                    json_string(h.what),
                    us(h.start_ns),
                    us(h.end_ns.saturating_sub(h.start_ns)),
                    h.job,
                    h.id
                ),
            );
        }
        for t in &self.tasks {
            let name = self.task_names.get(t.kind as usize).copied().unwrap_or("?");
            event(
                &mut out,
                format!(
                    "{{\"name\":{},\"cat\":\"task\",\"ph\":\"X\",\"ts\":{:.3},\"dur\":{:.3},\
                     \"pid\":{RUNTIME_PID},\"tid\":{},\"args\":{{\"job\":{},\"id\":{},\
                     \"parent\":{}{}}}}}",
                    json_string(name),
                    us(t.start_ns),
                    us(t.end_ns.saturating_sub(t.start_ns)),
                    t.track,
                    t.job,
                    t.id,
                    t.parent,
                    t.node.map_or(String::new(), |n| format!(",\"node\":{n}"))
                ),
            );
            // The arrow from its origin, when that was recorded: it starts where the origin
            // starts (inside its slice) and binds to this task's slice.
            if let Some(&(pid, tid, from)) = at.get(&t.parent) {
                event(
                    &mut out,
                    format!(
                        "{{\"name\":\"origin\",\"cat\":\"flow\",\"ph\":\"s\",\"id\":{},\
                         \"ts\":{:.3},\"pid\":{pid},\"tid\":{tid}}}",
                        t.id,
                        us(from)
                    ),
                );
                event(
                    &mut out,
                    format!(
                        "{{\"name\":\"origin\",\"cat\":\"flow\",\"ph\":\"f\",\"bp\":\"e\",\
                         \"id\":{},\"ts\":{:.3},\"pid\":{RUNTIME_PID},\"tid\":{}}}",
                        t.id,
                        us(t.start_ns),
                        t.track
                    ),
                );
            }
        }
        for c in &self.counters {
            event(
                &mut out,
                format!(
                    "{{\"name\":{},\"ph\":\"C\",\"ts\":{:.3},\"pid\":{RUNTIME_PID},\
                     \"args\":{{\"value\":{}}}}}",
                    json_string(c.name),
                    us(c.at_ns),
                    json_number(c.value)
                ),
            );
        }
        let _ = write!(
            out,
            "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{{\"dropped\":{}}}}}\n",
            self.dropped
        );
        out
    }

    /// [`to_chrome_json`](Self::to_chrome_json) into the file `path`.
    pub fn write_chrome_json(&self, path: impl AsRef<std::path::Path>) -> crate::Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_chrome_json())
            .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))
    }

    /// The host threads' names, in order of first appearance.
    fn host_threads(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for h in &self.host {
            if !names.contains(&h.thread) {
                names.push(h.thread.clone());
            }
        }
        names
    }
}

/// The host's calls, as either backend records them: a bounded list (past `capacity`, counted
/// as dropped), each span named by its thread.
pub(crate) struct HostLog {
    spans: std::sync::Mutex<Vec<RecordedSpan>>,
    capacity: usize,
    dropped: std::sync::atomic::AtomicU64,
}

impl HostLog {
    pub(crate) fn new(capacity: usize) -> HostLog {
        HostLog {
            spans: std::sync::Mutex::default(),
            capacity,
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Spans kept between takes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// A call of the calling thread: `what` for `job`, from `start_ns` to `end_ns`; false if
    /// it was dropped (the log was full).
    pub(crate) fn record(
        &self,
        id: u64,
        what: &'static str,
        job: u64,
        start_ns: u64,
        end_ns: u64,
    ) -> bool {
        // During the thread's exit (a traced wait in another thread-local's drop) the key may
        // be gone: name the thread anew then.
        let thread = THREAD_NAME
            .try_with(Arc::clone)
            .unwrap_or_else(|_| thread_name_now().into());
        let mut spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        if spans.len() < self.capacity {
            spans.push(RecordedSpan {
                id,
                what,
                thread,
                job,
                start_ns,
                end_ns,
            });
            true
        } else {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        }
    }

    /// The spans recorded since the last take, and how many were dropped; both start over.
    pub(crate) fn take(&self) -> (Vec<HostSpan>, u64) {
        let spans = std::mem::take(&mut *self.spans.lock().unwrap_or_else(|e| e.into_inner()));
        let dropped = self.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        let spans = spans
            .into_iter()
            .map(|r| HostSpan {
                id: r.id,
                what: r.what,
                thread: r.thread.to_string(),
                job: r.job,
                start_ns: r.start_ns,
                end_ns: r.end_ns,
            })
            .collect();
        (spans, dropped)
    }
}

/// A [`HostSpan`] as recorded, its thread's name shared: a span is taken on every traced
/// submit and wait, where naming the thread anew (a `String`, and `ThreadId`'s formatting for
/// an unnamed thread) would cost an allocation each.
struct RecordedSpan {
    id: u64,
    what: &'static str,
    thread: Arc<str>,
    job: u64,
    start_ns: u64,
    end_ns: u64,
}

thread_local! {
    /// The calling thread's name for host spans.
    static THREAD_NAME: Arc<str> = thread_name_now().into();
}

/// The calling thread's name, or its id where it has none.
fn thread_name_now() -> String {
    let thread = std::thread::current();
    thread
        .name()
        .map_or_else(|| format!("{:?}", thread.id()), str::to_string)
}

/// A metadata event naming a process or thread.
fn meta(what: &str, pid: u32, tid: Option<u64>, name: &str) -> String {
    let tid = tid.map_or(String::new(), |t| format!(",\"tid\":{t}"));
    format!(
        "{{\"name\":\"{what}\",\"ph\":\"M\",\"pid\":{pid}{tid},\"args\":{{\"name\":{}}}}}",
        json_string(name)
    )
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `v` as a JSON number; JSON has no NaN or infinity, so those are `null`.
fn json_number(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        "null".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_flows_join_a_task_to_its_origin() {
        let trace = Trace {
            tasks: vec![
                TaskSpan {
                    id: 2,
                    parent: 1,
                    kind: 0,
                    node: None,
                    job: 7,
                    track: 0,
                    start_ns: 1_000,
                    end_ns: 3_000,
                },
                TaskSpan {
                    id: 3,
                    parent: 2,
                    kind: 0,
                    node: Some(4),
                    job: 7,
                    track: 1,
                    start_ns: 4_000,
                    end_ns: 4_500,
                },
            ],
            host: vec![HostSpan {
                id: 1,
                what: "submit",
                thread: "main \"1\"".into(),
                job: 7,
                start_ns: 0,
                end_ns: 500,
            }],
            counters: vec![CounterSample {
                name: "queued tasks",
                at_ns: 2_000,
                value: 1.0,
            }],
            tracks: vec!["worker 0".into(), "worker 1".into()],
            task_names: vec!["Fib"],
            dropped: 0,
        };
        let json = trace.to_chrome_json();
        assert!(
            json.contains(r#""thread_name","ph":"M","pid":2,"tid":0,"args":{"name":"main \"1\""}"#),
            "{json}"
        );
        assert!(json.contains(r#"{"name":"Fib","cat":"task","ph":"X","ts":4.000,"dur":0.500,"pid":1,"tid":1,"args":{"job":7,"id":3,"parent":2,"node":4}}"#), "{json}");
        // Task 3's arrow starts in task 2's slice (track 0) and ends at task 3 (track 1); task
        // 2's starts at the host's submit.
        assert!(
            json.contains(
                r#"{"name":"origin","cat":"flow","ph":"s","id":3,"ts":1.000,"pid":1,"tid":0}"#
            ),
            "{json}"
        );
        assert!(json.contains(r#"{"name":"origin","cat":"flow","ph":"f","bp":"e","id":3,"ts":4.000,"pid":1,"tid":1}"#), "{json}");
        assert!(
            json.contains(
                r#"{"name":"origin","cat":"flow","ph":"s","id":2,"ts":0.000,"pid":2,"tid":0}"#
            ),
            "{json}"
        );
        assert!(
            json.contains(
                r#"{"name":"queued tasks","ph":"C","ts":2.000,"pid":1,"args":{"value":1}}"#
            ),
            "{json}"
        );
        assert!(json.ends_with("\"otherData\":{\"dropped\":0}}\n"), "{json}");
    }

    #[test]
    fn a_counter_that_is_not_a_number_is_written_as_null() {
        let sample = |value| CounterSample {
            name: "heap bytes",
            at_ns: 0,
            value,
        };
        let trace = Trace {
            tasks: vec![],
            host: vec![],
            counters: vec![sample(f64::NAN), sample(f64::INFINITY), sample(2.5)],
            tracks: vec![],
            task_names: vec![],
            dropped: 0,
        };
        let json = trace.to_chrome_json();
        assert_eq!(
            json.matches(r#""args":{"value":null}"#).count(),
            2,
            "{json}"
        );
        assert!(json.contains(r#""args":{"value":2.5}"#), "{json}");
    }
}
