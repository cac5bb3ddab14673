
/// What `smp_init()` (kernel/smp.c) asks of the page allocator for each AP,
/// counted from the code rather than fitted: the calls that, before
/// `init_per_zone_wmark_min()` (a postcore initcall, after `smp_init()` and
/// `page_alloc_init_late()` in `kernel_init_freeable()`), each accept a
/// whole 4 MiB block through `cond_accept_memory()`'s `if (!wmark)` branch.
///
/// Each AP gets kernel threads, each forked by `copy_process()`:
/// - `swapper/N`, its idle task: `idle_threads_init()` → `fork_idle()`,
///   for every AP before the first one comes up;
/// - `cpuhp/N`, `migration/N`, `ksoftirqd/N`: the `smp_hotplug_thread`s
///   registered by kernel/cpu.c (`cpuhp_threads`), kernel/stop_machine.c
///   (`cpu_stop_threads`) and kernel/softirq.c (`softirq_threads`), made at
///   `CPUHP_CREATE_THREADS` by `smpboot_create_threads()`; `rcuc/N` only
///   with RCU_BOOST and `irq_work/N` only on PREEMPT_RT, neither in the
///   configurations modelled;
/// - `kworker/N:0` and `kworker/N:0H`: `workqueue_prepare_cpu()` →
///   `create_worker()` for the CPU's two standard worker pools
///   (`NR_STD_WORKER_POOLS`).
///
/// A fork enters the page allocator for the stack: with CONFIG_VMAP_STACK,
/// `alloc_thread_stack_node()` → `__vmalloc_node()` → `vm_area_alloc_pages()`
/// takes THREAD_SIZE (16 KiB) in one `alloc_pages_bulk()` call (its
/// per-CPU stack cache is empty at boot), and `alloc_pages_bulk()` calls
/// `cond_accept_memory()` once per zone it visits. The task_struct comes
/// from the `task_struct` slab cache, which takes a new order-3 slab every
/// `taskStructsPerSlab` forks. The smaller slab objects of a fork (pid,
/// cred, signal, ...) share slabs with everything else and are left out.
/// The rest of an AP's bring-up (GDT, IRQ stack, per-CPU pagesets) lives in
/// the per-CPU area memblock set up before the page allocator existed.
///
/// All of this runs on the BSP, which forks the idle tasks and drives
/// `cpu_up()`, with kthreadd woken beside it (Dstack PR 1220 saw the
/// acceptance on the BSP).
public struct SMPBringup: Sendable {
    /// Kernel threads forked per AP, in the order bring-up makes them, and where.
    public static let threadsPerAP: [(name: String, madeBy: String)] = [
        ("swapper/N", "idle_threads_init() -> fork_idle()"),
        ("cpuhp/N", "smpboot_create_threads(): cpuhp_threads"),
        ("migration/N", "smpboot_create_threads(): cpu_stop_threads"),
        ("ksoftirqd/N", "smpboot_create_threads(): softirq_threads"),
        ("kworker/N:0", "workqueue_prepare_cpu() -> create_worker()"),
        ("kworker/N:0H", "workqueue_prepare_cpu() -> create_worker(), highpri pool"),
    ]
    /// `task_struct` objects per slab: ~10 KiB each on x86-64 (the struct
    /// plus the FPU state, `arch_task_struct_size`), so SLUB's
    /// `calculate_order()` makes order-3 (32 KiB) slabs of 3, as
    /// /proc/slabinfo of distribution kernels shows (objperslab 3,
    /// pagesperslab 8).
    public static let taskStructsPerSlab: UInt64 = 3

    /// Page-allocator calls made by the forks `forksBefore ..< forksBefore + forks`:
    /// one stack each, plus a new task_struct slab every `taskStructsPerSlab`.
    /// - Complexity: O(1).
    public static func pageAllocatorCalls(forksBefore: UInt64, forks: UInt64) -> UInt64 {
        let slabs = divCeil(forksBefore + forks, taskStructsPerSlab) - divCeil(forksBefore, taskStructsPerSlab)
        return forks + slabs
    }

    static func divCeil(_ a: UInt64, _ b: UInt64) -> UInt64 { (a + b - 1) / b }
}
