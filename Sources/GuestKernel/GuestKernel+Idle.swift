import CoCoGuest

/// Which vCPUs run guest code and which sit in the idle loop, halted, told
/// to the platform as they change (issue 17 §1: `tdx_track()` kicks only
/// vCPUs in guest mode).
///
/// Where a TDX guest's CPUs are, from the source:
/// - from the TD's start until `smp_init()` every AP spins in the
///   firmware's mailbox loop (TDVF's `AsmRelocateApMailBoxLoop`, a
///   compare-and-jump on the ACPI MADT multiprocessor wakeup mailbox, no
///   HLT): in guest mode. A kernel that kexec started finds them there too:
///   the previous kernel stopped them with `acpi_mp_stop_this_cpu()`, which
///   jumps back to that loop;
/// - `smp_init()` wakes each AP through the mailbox (`acpi_wakeup_cpu()`);
///   once up, `start_secondary()` → `cpu_startup_entry()` → `do_idle()`:
///   with nothing to run it halts (`default_idle_call()` →
///   `arch_cpu_idle()` → `tdx_safe_halt()`, TDVMCALL<HLT>, which KVM's
///   `tdx_emulate_hlt()` turns into `kvm_vcpu_halt()`);
/// - a timer tick wakes an idle AP for the tick handler and it halts again
///   (the kernel counts those exits, `idleTickExits`); the few microseconds
///   in guest mode per tick are not modelled: between ticks it is halted;
/// - work queued on a CPU (the `pgdatinit` threads and padata workers of
///   `page_alloc_init_late()`, user space, a workload's tasks) wakes it
///   (a reschedule IPI) and it halts again when the work is done.
extension GuestKernel {
    /// Whether `vcpu` runs guest code (false: halted in the idle loop).
    /// - Complexity: O(1).
    public func isRunning(vcpu: Int) -> Bool { vcpuRunning.indices.contains(vcpu) && vcpuRunning[vcpu] }

    /// Work is queued on `cpus`: the halted ones are woken.
    /// - Complexity: O(|cpus|).
    package func wakeVCPUs(_ cpus: some Sequence<Int>) {
        for v in cpus where vcpuRunning.indices.contains(v) && !vcpuRunning[v] {
            vcpuRunning[v] = true
            platform.wake(vcpu: v)
        }
    }

    /// `cpus` have nothing left to run: each enters the idle loop and halts
    /// (with `idle=poll` it spins there, in guest mode: nothing changes).
    /// - Complexity: O(|cpus|).
    package func idleVCPUs(_ cpus: some Sequence<Int>) {
        guard !config.idlePoll else { return }
        for v in cpus where vcpuRunning.indices.contains(v) && vcpuRunning[v] {
            vcpuRunning[v] = false
            platform.halt(vcpu: v)
        }
    }

    /// Every vCPU idles: the shell waits for its user.
    /// - Complexity: O(vCPUs).
    package func idleAllVCPUs() { idleVCPUs(0..<vcpus) }
}
