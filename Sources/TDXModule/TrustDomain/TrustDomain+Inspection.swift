package import MemoryModel

/// Read-only views of the S-EPT for invariants and diagnostics. The host
/// never learns S-EPT state this way in the real system (KVM sees only
/// SEAMCALL return values); these exist so that a checker can compare
/// KVM's mirror with the module, and are `package` for that reason.
extension TrustDomain {
    /// Calls `body` with each run of 2M-level entries in `chunks`.
    /// - Complexity: O(log runs + k).
    package func forEach2MEntry(in chunks: Range<GuestRegion2M>, _ body: (Range<GuestRegion2M>, SEPTEntry) -> Void) {
        pde.forEachRun(in: chunks, body)
    }

    /// Calls `body` with each run of 4K-level entries in `frames`.
    /// - Complexity: O(log runs + k).
    package func forEach4KEntry(in frames: Range<GuestFrameNumber>, _ body: (Range<GuestFrameNumber>, SEPTEntry) -> Void) {
        pte.forEachRun(in: frames, body)
    }

    /// Number of 4K entries in `frames` that are not FREE.
    /// - Complexity: O(log runs + k).
    package func used4KEntries(in frames: Range<GuestFrameNumber>) -> UInt64 {
        pte.measure(in: frames) { $0.state != .free }
    }

    /// Calls `body` with each run of 1G-level entries in `regions`.
    /// - Complexity: O(log runs + k).
    package func forEach1GEntry(in regions: Range<GuestRegion1G>, _ body: (Range<GuestRegion1G>, SEPTEntry) -> Void) {
        pdpte.forEachRun(in: regions, body)
    }

    /// Whether the PAMT_4K of 2M host region `r` is installed (DPAMT).
    package func isPAMT4KInstalled(_ r: HostRegion2M) -> Bool { pamt4K.value(at: r) }
    /// How many 2M host regions of `r` have their PAMT_4K installed.
    /// - Complexity: O(log runs + runs in `r`).
    package func pamt4KInstalled(in r: Range<HostRegion2M>) -> UInt64 { pamt4K.measure(in: r) { $0 } }

    /// Private pages in `frames` the guest has accepted (MAPPED at 2M or
    /// 4K): what a conversion that zaps them loses.
    /// - Complexity: O(log runs + k).
    package func acceptedFrameCount(in frames: Range<GuestFrameNumber>) -> UInt64 {
        var n: UInt64 = 0
        pdpte.forEachRun(in: frames.covering1G) { r, e in
            let lo = max(frames.lowerBound, r.lowerBound.firstFrame), hi = min(frames.upperBound, r.upperBound.firstFrame)
            if e.state == .mapped { n += hi - lo } else if e.state == .nlMapped { n += acceptedFramesBelow1G(lo..<hi) }
        }
        return n
    }

    func acceptedFramesBelow1G(_ frames: Range<GuestFrameNumber>) -> UInt64 {
        var n: UInt64 = 0
        pde.forEachRun(in: frames.covering2M) { r, e in
            let lo = max(frames.lowerBound, r.frames.lowerBound), hi = min(frames.upperBound, r.frames.upperBound)
            if e.state == .mapped { n += hi - lo } else if e.state.isNonLeaf {
                n += pte.measure(in: lo..<hi) { $0.state == .mapped }
            }
        }
        return n
    }
}
