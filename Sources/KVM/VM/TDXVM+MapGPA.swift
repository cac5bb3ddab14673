import CostModel
public import MemoryModel
public import TDXModule

extension TDXVM {
    /// TDX_MAP_GPA_MAX_LEN (arch/x86/kvm/vmx/tdx.c): the part of a MapGPA
    /// KVM hands the VMM in one KVM_HC_MAP_GPA_RANGE exit.
    public static let mapGPAMaxBytes: UInt64 = 2 << 20

    /// TDG.VP.VMCALL<MapGPA> as KVM and QEMU serve it. KVM's `tdx_map_gpa()`
    /// checks the range, then `__tdx_map_gpa()` exits to user space with
    /// KVM_HC_MAP_GPA_RANGE for at most TDX_MAP_GPA_MAX_LEN (2 MiB);
    /// `tdx_complete_vmcall_map_gpa()` moves on by 2 MiB and exits again
    /// until the range is done; between pieces, when `kvm_vcpu_has_events()`
    /// (`hasEvents`: here a pending interrupt, the boot CPU's tick), it
    /// returns TDVMCALL_STATUS_RETRY with the next GPA in R11 (`retryAt`)
    /// and the guest issues the rest again (`mapGPA(_:toPrivate:hasEvents:)`).
    /// For each exit QEMU's `kvm_convert_memory()` sets the attributes
    /// (KVM_SET_MEMORY_ATTRIBUTES: to shared, private leaves are split
    /// where they cross the range and zapped, BLOCK, TRACK and REMOVE each)
    /// and discards the side the pages leave: to shared,
    /// `ram_block_discard_guest_memfd_range()` punches the guest_memfd pages
    /// out (freed); to private, `ram_block_discard_range()` drops the VMM's
    /// shared pages. With attributes in guest_memfd (`vm-attributes=off`,
    /// the in-place series) the exit is the guest_memfd conversion ioctl.
    /// A failed exit ends the TDVMCALL with TDVMCALL_STATUS_INVALID_OPERAND.
    /// - Complexity: O(2 MiB pieces × log runs + leaves zapped).
    public func mapGPA(_ frames: Range<GuestFrameNumber>, toPrivate: Bool) -> MapGPAResult {
        mapGPA(frames, toPrivate: toPrivate, hasEvents: { _ in false })
    }

    /// `mapGPA(_:toPrivate:)` with `kvm_vcpu_has_events()` asked after each
    /// piece that is not the last (`tdx_complete_vmcall_map_gpa()` moves
    /// `map_gpa_next` on by 2 MiB, returns if the range is done, then checks
    /// for events): true ends the call with TDVMCALL_STATUS_RETRY, R11 the
    /// next piece. `hasEvents` sees the call's result so far (its exits and
    /// host operations, for the vCPU's time).
    /// - Complexity: O(2 MiB pieces × log runs + leaves zapped).
    public func mapGPA(_ frames: Range<GuestFrameNumber>, toPrivate: Bool, hasEvents: (MapGPAResult) -> Bool) -> MapGPAResult {
        var r = MapGPAResult()
        let before = ops
        func done() -> MapGPAResult {
            r.counts = ops - before
            r.zappedLeaves = r.counts[.tdxRemove]
            return r
        }
        guard !isDead else { r.failure = "the TD is no longer running"; return done() }
        let step = ByteCount(Self.mapGPAMaxBytes).frames()
        var g = frames.lowerBound
        while g < frames.upperBound {
            let piece = g..<min(frames.upperBound, g + step)
            r.vmmExits += 1
            let o: HostOutcome
            if options.vmWideAttributes {
                // The exit itself is what the host sees (`convert` records its own).
                if hostTrace != nil { hostTrace!.add(toPrivate ? .mapGPAPrivate : .mapGPAShared, level: nil, frames: piece) }
                var a = setMemoryAttributes(piece, private: toPrivate)
                if a == .ok && !toPrivate { a = punchHole(piece) }
                if a == .ok && toPrivate { vmmShared.assign(piece, false) }
                o = a
            } else {
                o = convert(piece, toPrivate: toPrivate)
            }
            guard o == .ok, !isDead else {
                r.failure = isDead ? "\(outcome)" : "KVM_HC_MAP_GPA_RANGE \(piece.lowerBound.address)+\(piece.count) pages: \(o): TDVMCALL_STATUS_INVALID_OPERAND"
                return done()
            }
            g = piece.upperBound
            if g < frames.upperBound {
                r.counts = ops - before
                if hasEvents(r) {
                    r.retryAt = g
                    return done()
                }
            }
        }
        return done()
    }
}
