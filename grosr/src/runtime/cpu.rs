//! The CPU backend ([`Backend::Cpu`](super::Backend)): the runtime's tasks on host threads
//! (`crate::cpu`), for programs whose tasks all have Rust bodies. No GPU, driver or NVRTC.

use std::any::TypeId;
use std::collections::HashMap;
use std::time::Duration;

use super::{Job, RuntimeInfo, Startup};
use crate::codegen::TaskInfo;
use crate::cpu::CpuExecutor;
use crate::driver::Gpu;
use crate::error::{Error, Result};

/// The CPU backend's runtime: the executor, its host memory as the `Gpu`, and what `Runtime`
/// reports.
pub(crate) struct CpuRuntime {
    pub(super) info: RuntimeInfo,
    pub(super) tasks: Vec<TaskInfo>,
    pub(super) kinds: HashMap<TypeId, u32>,
    exec: CpuExecutor,
    gpu: Gpu,
    /// How long `Job::wait` waits (the builder's submit timeout).
    wait: Duration,
}

/// The CPU backend's queues hold as many tasks as this many queues of
/// [`RuntimeBuilder::queue_capacity`](crate::RuntimeBuilder::queue_capacity) slots: about what
/// an H200's (132 SM queues) hold, so a spawn tree that fits there fits here; a spawn past it
/// fails its job with `QueueOverflow`, as there.
pub(crate) const CPU_QUEUES: usize = 128;

impl CpuRuntime {
    /// A CPU runtime for `tasks` on `threads` threads, tracing `trace_events` a track (0: off),
    /// its queues holding `queue_capacity` × [`CPU_QUEUES`] tasks; an error naming the first
    /// task type with a CUDA C body, which only a GPU runs.
    pub(super) fn new(
        tasks: Vec<TaskInfo>,
        (threads, trace_events, queue_capacity, heap_bytes): (usize, usize, u32, u64),
        wait: Duration,
        info: impl FnOnce(&Gpu) -> RuntimeInfo,
    ) -> Result<CpuRuntime> {
        if let Some(t) = tasks.iter().find(|t| t.cpu_body.is_none()) {
            return Err(Error::Config(format!(
                "task `{}` has a CUDA C body, which only a GPU runs: give it a Rust body \
                 (`#[grosr::task(rust = |task, ctx| ..)]`) to run it on Backend::Cpu",
                t.name
            )));
        }
        let spawn_cap = (queue_capacity as usize).saturating_mul(CPU_QUEUES);
        let exec = CpuExecutor::new(&tasks, threads, trace_events, spawn_cap)?;
        exec.memory().set_heap_limit(heap_bytes);
        let gpu = Gpu::host(std::sync::Arc::clone(exec.memory()), threads);
        let kinds = tasks
            .iter()
            .enumerate()
            .map(|(k, t)| (t.type_id, k as u32))
            .collect();
        Ok(CpuRuntime {
            info: info(&gpu),
            tasks,
            kinds,
            exec,
            gpu,
            wait,
        })
    }

    pub(super) fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The executor (task graphs run on it).
    pub(crate) fn executor(&self) -> &CpuExecutor {
        &self.exec
    }

    /// The host heap bodies allocate from: its size, what is in use and the failures (no
    /// arena, slabs or classes here); an error without a heap, as on a GPU.
    pub(super) fn heap_stats(&self) -> Result<crate::HeapStats> {
        let memory = self.exec.memory();
        if memory.heap_limit() == 0 {
            return Err(Error::Config(
                "this runtime was built with heap_bytes(0)".into(),
            ));
        }
        let (allocations_in_use, bytes_in_use) = memory.heap_in_use();
        Ok(crate::HeapStats {
            heap_bytes: memory.heap_limit(),
            allocations_in_use,
            bytes_in_use,
            failures: memory.heap_failures(),
            ..crate::HeapStats::default()
        })
    }

    /// The heap's size (`RuntimeBuilder::heap_bytes`, resolved as on a GPU).
    pub(super) fn heap_bytes(&self) -> u64 {
        self.exec.memory().heap_limit()
    }

    /// Frees every allocation bodies made; only while stopped, as on a GPU.
    pub(super) fn heap_reset(&self) -> Result<Duration> {
        if self.is_running() {
            return Err(Error::Config(
                "heap_reset needs the scheduler stopped: call Runtime::stop first".into(),
            ));
        }
        let t = std::time::Instant::now();
        self.exec.memory().heap_reset();
        Ok(t.elapsed())
    }

    pub(super) fn executed_all(&self) -> Vec<u64> {
        self.exec.executed_all()
    }

    pub(super) fn submit(&self, kind: u32, bytes: &[u8]) -> Result<Job<'_>> {
        Ok(Job::cpu(self.exec.submit_bytes(kind, bytes)?, self.wait))
    }

    pub(super) fn submit_range(&self, kind: u32, record: &[u8], items: u32) -> Result<Job<'_>> {
        let job = self.exec.submit_range_bytes(kind, record, items)?;
        Ok(Job::cpu(job, self.wait))
    }

    pub(super) fn is_running(&self) -> bool {
        !self.exec.is_stopped()
    }

    pub(super) fn stop(&self) -> Result<()> {
        self.exec.stop();
        Ok(())
    }

    pub(super) fn start(&self) -> Result<()> {
        self.exec.start();
        Ok(())
    }
}

impl std::fmt::Debug for CpuRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tasks: Vec<&str> = self.tasks.iter().map(|t| t.name).collect();
        f.debug_struct("Runtime")
            .field("backend", &"cpu")
            .field("info", &self.info)
            .field("tasks", &tasks)
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

/// What a CPU runtime reports about itself.
pub(super) fn info(
    gpu: &Gpu,
    tuning: super::Tuning,
    optimize: super::Optimize,
    max_sms: Option<u32>,
) -> RuntimeInfo {
    RuntimeInfo {
        device: gpu.name.clone(),
        arch: 0,
        sm_count: gpu.sm_count,
        // Its workers stand for SMs: `max_sms` below their count leaves room for a graph's
        // lowered launches beside the running executor, as on a GPU.
        sms_used: max_sms.map_or(gpu.sm_count, |m| m.min(gpu.sm_count)),
        blocks_per_sm: 1,
        grid_blocks: gpu.sm_count,
        driver_version: 0,
        nvrtc_version: (0, 0),
        startup: Startup::default(),
        tuning,
        diagnostics: false,
        cancellable: true,
        optimize,
        submit_rings: 0,
    }
}
