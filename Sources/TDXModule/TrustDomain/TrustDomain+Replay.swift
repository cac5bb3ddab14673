import MemoryModel

/// Bulk replay support for the host model: puts ranges into a state that
/// stepping the same SEAMCALLs chunk by chunk would have produced, and adds
/// the recorded call counts. Used only by `TDXVM`'s replay, which tests hold
/// equal to stepping.
extension TrustDomain {
    /// Sets the 2M entries of `chunks`, the 4K entries of `frames`, and the
    /// PAMT state of `hostRanges`.
    public func replaceEntries(chunks: Range<UInt64>, pde e2: SEPTEntry, frames: Range<UInt64>, pte e4: SEPTEntry,
                               hostRanges: Range<UInt64>, pamtInstalled: Bool, inUse: UInt32) {
        pde.assign(chunks, e2)
        pte.assign(frames, e4)
        pamt4K.assign(hostRanges, pamtInstalled)
        hpa4KInUse.assign(hostRanges, inUse)
    }

    /// Marks the 1G-level (`pd`) and 512G-level (`pdpt`) entries NL_MAPPED.
    public func markUpperTables(pd: Range<UInt64>?, pdpt: Range<UInt64>?) {
        if let pd { pdpte.assign(pd, true) }
        if let pdpt { pml4e.assign(pdpt, true) }
    }

    public func addCalls(_ c: SEAMCALLCounts, times k: UInt64) { calls.add(c, times: k) }

    /// `n` successful TRACKs, each followed (if `kicked`) by a kick that puts
    /// every running vCPU in the new epoch.
    public func advanceEpoch(by n: UInt64, kicked: Bool) {
        tdEpoch += n
        if kicked { for v in vcpuEpoch.indices where vcpuEpoch[v] != nil { vcpuEpoch[v] = tdEpoch } }
    }
}
