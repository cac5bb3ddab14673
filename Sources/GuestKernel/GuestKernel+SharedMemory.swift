public import CoCoGuest
public import CostModel
import MemoryModel

extension GuestKernel {
    /// `mem_encrypt_init()` → `swiotlb_update_mem_attributes()`
    /// (kernel/dma/swiotlb.c): `set_memory_decrypted()` of the whole default
    /// pool, `PAGE_ALIGN(nslabs << IO_TLB_SHIFT)` bytes, on the boot CPU,
    /// in `arch_cpu_finalize_init()` (start_kernel, after `mm_core_init()`
    /// and before `efi_enter_virtual_mode()`). The pool stays memblock
    /// memory the kernel reserved: MemTotal and every zone count are
    /// unchanged (decrypted memory is still the kernel's). The conversion
    /// goes through the platform (`GuestPlatform.setMemoryEncrypted`).
    /// Nothing happens without a pool or when `swiotlbShared` is off.
    /// Interrupts are on (start_kernel()'s `local_irq_enable()` came
    /// before): the boot CPU's tick at `earlyTickHz`, if any, is pending
    /// whenever one of its periods ends during the conversion, and on TDX
    /// it cuts the MapGPA into several TDVMCALLs.
    /// - Complexity: that of the platform's conversion of the pool.
    public func swiotlbUpdateMemAttributes(clock: inout PhaseClock) -> AcceptOutcome {
        guard config.swiotlbShared, let pool = swiotlbRange else { return .ok }
        let (committed, shared) = (platform.committedBytes, platform.sharedPages)
        // start_kernel() enabled interrupts before arch_cpu_finalize_init(): the boot CPU's tick, if any, runs.
        platform.setConversionTick(hz: config.earlyTickHz)
        let o = platform.setMemoryEncrypted(pool, toPrivate: false, vcpu: 0, clock: &clock, costs: costs)
        platform.setConversionTick(hz: 0)
        guard o == .ok, platform.sharedPages > shared else { return o }
        decryptedRanges.append(pool)
        let freed = committed > platform.committedBytes ? committed - platform.committedBytes : 0
        events.append("mem_encrypt_init: swiotlb_update_mem_attributes(): set_memory_decrypted() of [mem \(hex16(pool.start))-\(hex16(pool.end - 1))] "
                      + "(\(pool.size >> 20)MB) made it shared; the host freed \(freed >> 20) MiB of its private memory")
        return o
    }
}

/// What `enc_kexec_finish()` did before `relocate_kernel`.
public struct KexecUnshare: Sendable, Equatable {
    /// Bytes converted back to private (`tdx_kexec_finish()` / `snp_kexec_finish()`).
    public var convertedBytes: UInt64 = 0
    /// Bytes left shared for the next kernel (a kernel without the commit).
    public var leftSharedBytes: UInt64 = 0
    public var outcome: AcceptOutcome = .ok
    public init() {}
}

extension GuestKernel {
    /// `native_machine_kexec()`'s caller: `x86_platform.guest.enc_kexec_begin()`
    /// (no new conversions) and, with interrupts off,
    /// `enc_kexec_finish()`: on a kernel with 859e63b789d6 (TDX, 6.11) or
    /// 3074152e56c9 (SNP, 6.13) every range this kernel made shared is
    /// converted back to private, through the same platform path as
    /// `set_memory_encrypted()` (TDX: MapGPA to private and
    /// `tdx_accept_memory()`; SNP: PSC to private and PVALIDATE). The kernel
    /// walks the direct map's decrypted PTEs; the model's decrypted ranges
    /// are the ones it made (the SWIOTLB pool and, with `earlyDecrypted` on
    /// SNP, the used `__bss_decrypted` pages), and on SNP the per-CPU GHCBs
    /// go last through the MSR protocol (`kexecUnshareGHCBs`; kvmclock's
    /// extra pages are not modelled). TDX only logs a failure ("Failed to unshare
    /// range"); SNP terminates on one. Without the commit the ranges stay
    /// shared and the next kernel meets them as RAM it believes accepted.
    /// - Complexity: that of the conversions.
    public func kexecUnshare(clock: inout PhaseClock) -> KexecUnshare {
        var out = KexecUnshare()
        guard !decryptedRanges.isEmpty || !ghcbPages.isEmpty else { return out }
        let kind = platform.kind
        guard config.version.unsharesOnKexec(kind) else {
            let left = decryptedRanges + ghcbPages
            out.leftSharedBytes = left.reduce(0) { $0 + $1.size }
            let commit = kind == .tdx ? "tdx_kexec_finish(), 859e63b789d6, 6.11" : "snp_kexec_finish(), 3074152e56c9, 6.13"
            events.append("kexec: kernel \(config.version) cannot convert shared memory back (\(commit)): "
                          + left.map { "[mem \(hex16($0.start))-\(hex16($0.end - 1))]" }.joined(separator: ", ")
                          + " stays shared for the next kernel, which takes it for accepted private RAM")
            return out
        }
        let fn = kind == .tdx ? "tdx_kexec_finish()" : "snp_kexec_finish()"
        for r in decryptedRanges {
            let shared = platform.sharedPages
            let o = platform.setMemoryEncrypted(r, toPrivate: true, vcpu: 0, clock: &clock, costs: costs)
            if o != .ok { out.outcome = o; return out }
            if platform.sharedPages < shared {
                out.convertedBytes += r.size
                events.append("kexec: \(fn) converted [mem \(hex16(r.start))-\(hex16(r.end - 1))] back to private")
            } else {
                // TDX: tdx_kexec_finish() pr_err()s and goes on; the range's state is unknown.
                events.append("kexec: \(fn): Failed to unshare range [mem \(hex16(r.start))-\(hex16(r.end - 1))]")
                out.leftSharedBytes += r.size
            }
        }
        decryptedRanges = []
        // snp_kexec_finish(): the per-CPU GHCBs last, through the MSR protocol.
        let (ghcbBytes, o) = kexecUnshareGHCBs(clock: &clock)
        out.convertedBytes += ghcbBytes
        if o != .ok { out.outcome = o }
        return out
    }

    /// `memblock_alloc()` zeroes what it returns (`memblock_alloc_try_nid()`'s
    /// memset): a private write to every page. Only memory left shared by a
    /// previous kernel can be inaccessible after the allocation accepted
    /// it, so the check runs only while the platform has shared memory.
    /// Returns the platform's outcome for the first such page.
    func zeroMemblock(_ r: AddressRange, vcpu: Int, clock: inout PhaseClock) -> AcceptOutcome {
        guard platform.sharedPages > 0, let gfn = firstInaccessibleFrame(r) else { return .ok }
        let (ops, o) = platform.touch(gfn: gfn, vcpu: vcpu)
        clock.charge(ops, vcpu: vcpu, costs: costs)
        events.append("memblock: zeroing [mem \(hex16(r.start))-\(hex16(r.end - 1))] wrote \(gfn.address), which a previous kernel left shared")
        return o
    }
}
