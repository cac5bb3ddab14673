import MemoryModel

/// The host memory a TD holds at one moment (issue 18 §5, third bullet):
/// - **private**: guest_memfd folios under private attributes, S-EPT and
///   PAMT pages;
/// - **shared in guest_memfd**: folios under shared attributes (in place:
///   the shared pages themselves);
/// - **VMM shared**: with VM-wide attributes, the VMM's own pages for
///   shared GPAs (populated by the guest's shared accesses and by host
///   processes touching guest memory, freed by QEMU's
///   `ram_block_discard_range()` when a range converts to private);
/// - **double backed**: GPAs with a VMM page and a guest_memfd page both;
/// - **pinned** (unevictable) against **reclaimable**: guest_memfd marks its
///   mapping unevictable (`mapping_set_unevictable()` in `kvm_gmem_create()`)
///   and S-EPT and PAMT pages are kernel memory, so everything the TD holds
///   through KVM is pinned; the VMM's shared memory is ordinary shmem or
///   anonymous memory the host can reclaim (swap).
public struct HostMemory: Sendable, Equatable {
    public var privatePages: UInt64
    public var gmemSharedPages: UInt64
    public var vmmSharedPages: UInt64
    public var doubleBackedPages: UInt64
    public var pinnedPages: UInt64 { privatePages + gmemSharedPages }
    public var reclaimablePages: UInt64 { vmmSharedPages }
    public var totalPages: UInt64 { pinnedPages + vmmSharedPages }
}

extension TDXVM {
    /// The TD's host memory now.
    /// - Complexity: O(runs of the folio, attribute and VMM maps).
    public var hostMemory: HostMemory {
        var gmemShared: UInt64 = 0
        gmem.folioAllocated.forEachRun(in: .lowest ..< .highest) { frames, allocated in
            guard allocated else { return }
            gmemShared += attributes.privateAttr.measure(in: frames) { !$0 }
        }
        var vmm: UInt64 = 0, double: UInt64 = 0
        vmmShared.forEachRun(in: .lowest ..< .highest) { frames, populated in
            guard populated else { return }
            vmm += UInt64(frames.count)
            double += gmem.folioAllocated.measure(in: frames) { $0 }
        }
        return HostMemory(privatePages: committedPages - gmemShared, gmemSharedPages: gmemShared,
                          vmmSharedPages: vmm, doubleBackedPages: double)
    }
}
