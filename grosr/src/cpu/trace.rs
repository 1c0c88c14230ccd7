//! The CPU executor's recorder for [`Trace`](crate::Trace): per worker, a bounded buffer of task
//! spans and counter samples (its own lock, so workers never wait for each other here); the
//! host's calls in one more. Ids come from one counter, so tasks and host spans never share one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::trace::{CounterSample, HostLog, TaskSpan, Trace};

/// What one worker recorded.
#[derive(Default)]
struct Track {
    tasks: Vec<TaskSpan>,
    counters: Vec<CounterSample>,
}

pub(crate) struct Recorder {
    epoch: Instant,
    next_id: AtomicU64,
    /// Events a track (and the host) keeps; the rest are counted in `dropped`.
    capacity: usize,
    tracks: Vec<Mutex<Track>>,
    host: HostLog,
    dropped: AtomicU64,
}

impl Recorder {
    /// A recorder for `workers` tracks of `capacity` events each.
    pub(crate) fn new(workers: usize, capacity: usize) -> Recorder {
        Recorder {
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            capacity,
            tracks: (0..workers).map(|_| Mutex::default()).collect(),
            host: HostLog::new(capacity),
            dropped: AtomicU64::new(0),
        }
    }

    /// A fresh id (never 0).
    pub(crate) fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Nanoseconds since the recorder was made.
    pub(crate) fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Keeps `e` in `buf` if there is room, else counts it dropped.
    fn keep<T>(&self, buf: &mut Vec<T>, e: T) {
        if buf.len() < self.capacity {
            buf.push(e);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn task(&self, track: usize, span: TaskSpan) {
        let mut t = self.tracks[track].lock().unwrap_or_else(|e| e.into_inner());
        self.keep(&mut t.tasks, span);
    }

    pub(crate) fn counter(&self, track: usize, name: &'static str, value: f64) {
        let at_ns = self.now();
        let mut t = self.tracks[track].lock().unwrap_or_else(|e| e.into_inner());
        self.keep(&mut t.counters, CounterSample { name, at_ns, value });
    }

    /// A host call of the calling thread: `what` for `job`, from `start_ns` until now.
    pub(crate) fn host(&self, id: u64, what: &'static str, job: u64, start_ns: u64) {
        self.host.record(id, what, job, start_ns, self.now());
    }

    /// Everything recorded since the last take, which it empties (the dropped count too).
    pub(crate) fn take(&self, task_names: Vec<&'static str>) -> Trace {
        let mut trace = Trace {
            task_names,
            ..Trace::default()
        };
        for (w, t) in self.tracks.iter().enumerate() {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            trace.tasks.append(&mut t.tasks);
            trace.counters.append(&mut t.counters);
            trace.tracks.push(format!("CPU worker {w}"));
        }
        trace
            .counters
            .sort_by(|a, b| (a.name, a.at_ns).cmp(&(b.name, b.at_ns)));
        let (host, host_dropped) = self.host.take();
        trace.host = host;
        trace.dropped = self.dropped.swap(0, Ordering::Relaxed) + host_dropped;
        trace
    }
}
