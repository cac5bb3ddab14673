public import CoCoGuest
public import CostModel
public import MemoryModel

/// What `kexec -e` did to the running guest.
public struct KexecReboot: Sendable {
    public var outcome: AcceptOutcome
    /// The first destination page the relocation found not accepted, if any.
    public var faultAddress: GuestPhysicalAddress?
    /// The segment that page belongs to.
    public var faultSegment: KexecSegmentKind?
    public init(outcome: AcceptOutcome, faultAddress: GuestPhysicalAddress? = nil, faultSegment: KexecSegmentKind? = nil) {
        self.outcome = outcome; self.faultAddress = faultAddress; self.faultSegment = faultSegment
    }
}

extension GuestKernel {
    /// `kernel_kexec()` → `machine_kexec()` → `relocate_kernel`: with
    /// interrupts off, `swap_pages` reads and writes every destination page
    /// in the order of the image's indirection list, which
    /// `kimage_load_segment()` built segment by segment, page by page. The
    /// first destination that is not accepted is a guest access to
    /// unaccepted private memory, and the platform reports it (TDX: KVM
    /// kills the TD; SNP: #VC 0x404). A crash image was loaded in place
    /// at load time; nothing is copied. The copy itself is not charged
    /// (no measured copy cost in the calibration).
    /// - Complexity: O(segments × log(pages) × platform runs).
    public func machineKexec(_ image: KexecImage, clock: inout PhaseClock) -> KexecReboot {
        guard image.type == .normal else { return KexecReboot(outcome: .ok) }
        for s in image.segments {
            guard let gfn = firstInaccessibleFrame(s.range) else { continue }
            let (ops, outcome) = platform.touch(gfn: gfn, vcpu: 0)
            clock.charge(ops, vcpu: 0, costs: costs)
            events.append("kexec: relocate_kernel touched \(gfn.address) (\(s.kind.rawValue)), which is not accepted")
            return KexecReboot(outcome: outcome, faultAddress: gfn.address, faultSegment: s.kind)
        }
        return KexecReboot(outcome: .ok)
    }

    /// The lowest 4K frame in `r` that is not accessible, by bisection over
    /// the platform's per-range state.
    func firstInaccessibleFrame(_ r: AddressRange) -> GuestFrameNumber? {
        var (lo, hi) = (r.frames.lowerBound, r.frames.upperBound)
        guard lo < hi, !platform.isAccessible(AddressRange(frames: lo..<hi)) else { return nil }
        // Invariant: [lo, hi) holds an inaccessible frame and none lies below lo.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if platform.isAccessible(AddressRange(frames: lo..<mid)) { lo = mid } else { hi = mid }
        }
        return lo
    }
}
