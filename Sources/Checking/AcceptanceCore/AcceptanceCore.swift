import MemoryModel

/// The acceptance core of a TDX guest as a `TransitionSystem`: a few 2 MiB
/// ranges, 2–3 vCPUs running the same short program (for each range:
/// `accept_memory()`, then touch it), and a host that answers the EPT
/// violations ACCEPT causes (AUG at 4K or 2M), splits 2M leaves
/// (TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.DEMOTE as three steps
/// the vCPUs interleave with) and converts ranges private to shared and,
/// on a vCPU's fault, back.
///
/// Each transition is one call by one actor:
/// - a vCPU step of `accept_memory()` (`drivers/firmware/efi/unaccepted_memory.c`):
///   the bitmap and accepting-list check under `unaccepted_memory_lock`, one
///   TDG.MEM.PAGE.ACCEPT of `tdx_accept_memory()` (2M first, 4K on any
///   non-zero status, as `try_accept_one()` in `arch/x86/coco/tdx/tdx-shared.c`),
///   or the bitmap clear and list removal at the end; or a touch of a range;
/// - a host step: KVM's handling of one EPT violation (`tdx_handle_ept_violation()`
///   → the TDP MMU fault → SEPT.ADD and PAGE.AUG), one SEAMCALL of a split
///   (`split_external_spte` of the TDX huge page series v3), one conversion
///   (`KVM_SET_MEMORY_ATTRIBUTES`, which zaps the private mapping:
///   BLOCK, TRACK, REMOVE under `mmu_lock`, one step), one hole punched in
///   guest_memfd by an adversarial host (the same zap, without the guest asking).
///
/// ACCEPT's statuses follow `TrustDomain.acceptResult` (`check_tdaccept_failure()`
/// in the module's `tdg_mem_page_accept.c`, module code: an accepted leaf above
/// the requested level is TDX_PAGE_ALREADY_ACCEPTED).
///
/// Abstracted away: a 2 MiB range has `pagesPerRange` 4K pages standing for
/// its 512; host frames, PAMT and DPAMT refcounts, the 1G/512G levels (always
/// present), TLB epochs (TRACK is one flag per range), the S-EPT page pool,
/// BUSY and the zero-step mitigation (the host's steps are serialized by
/// `mmu_lock` and never fail), UNBLOCK (a split always completes), PROMOTE,
/// timing. The mirror is KVM's view of each range's level (none, 2M leaf,
/// frozen during a split, 4K table). A vCPU spinning on the accepting list
/// is a vCPU with no enabled step (it waits), so the spin is not a cycle.
/// After a fatal guest event (touching unaccepted memory, a failed accept,
/// an accept that zeroes data) the TD is dead: nothing is enabled.
///
/// `Checker/acceptance-core.pml` is the same system in Promela, variable for
/// variable and step for step (docs/CHECKER.md).
public struct AcceptanceCore: TransitionSystem, Sendable {
    /// How the host maps private memory on an EPT violation.
    public enum HostMapping: String, Sendable, CaseIterable {
        /// Upstream KVM: private memory at 4K (SEPT.ADD, then a 4K AUG).
        case map4K = "4k"
        /// The TDX huge page series v3: at the accept level of the EPT
        /// violation (2M for a 2M ACCEPT), splitting a 2M leaf when a 4K
        /// ACCEPT faults under it.
        case map2M = "2m"
    }

    /// What the guest does with TDX_PAGE_ALREADY_ACCEPTED.
    public enum AlreadyAccepted: String, Sendable, CaseIterable {
        /// Linux: any non-zero status of a 2M ACCEPT falls back to 4K, any
        /// non-zero status of a 4K ACCEPT fails `tdx_accept_memory()` and
        /// the kernel panics ("TDX: Failed to accept memory").
        case linux
        /// A guest that takes ALREADY_ACCEPTED as success (as a firmware or
        /// a patched kernel might): it trusts the host's word.
        case trust
    }

    /// The configuration: every field is a parameter of `cocomem check`'s
    /// `acceptance-core` model (docs/CHECKER.md).
    public struct Configuration: Hashable, Sendable {
        /// vCPUs, 1...3, all running the same program.
        public var vcpus = 2
        /// 2 MiB ranges, 1...3, all unaccepted at the start.
        public var ranges = 2
        /// 4K pages standing for a range's 512, 1...4.
        public var pagesPerRange = 2
        public var hostMapping = HostMapping.map2M
        /// Splits the host may start on its own (memory pressure, a partial
        /// conversion); splits a 4K ACCEPT under a 2M leaf demands are not
        /// counted. 0...15.
        public var splits = 1
        /// Private-to-shared conversions the guest may request, 0...15.
        public var conversions = 0
        /// Holes an adversarial host may punch in accepted private memory, 0...15.
        public var zaps = 0
        /// The accepting list of `accept_memory()` (Linux since 6.5):
        /// a vCPU waits while another accepts an overlapping range.
        public var acceptingList = true
        public var alreadyAccepted = AlreadyAccepted.linux
        /// An adversarial host whose fault path may return without AUG, for
        /// ever (`refuse-aug`, docs/HOST.md): KVM resumes the vCPU, its
        /// ACCEPT faults again. Any EPT violation may be refused.
        public var refuseAUG = false
        /// TDG.MEM.PAGE.ACCEPT calls one `accept_memory()` of one range may
        /// take before the progress invariant calls it a livelock, 1...30.
        public var progressBound = 12

        public init() {}

        /// Refuses a configuration outside the encoding's widths.
        /// - Throws: `.invalidArgument` naming the parameter and its range.
        public func validate() throws {
            func check(_ name: String, _ v: Int, _ r: ClosedRange<Int>) throws {
                guard r.contains(v) else {
                    throw CocomemError(.invalidArgument, "acceptance-core: \(name) is \(v), must be \(r.lowerBound)...\(r.upperBound)")
                }
            }
            try check("vcpus", vcpus, 1...3)
            try check("ranges", ranges, 1...3)
            try check("pages-per-range", pagesPerRange, 1...4)
            try check("splits", splits, 0...15)
            try check("conversions", conversions, 0...15)
            try check("zaps", zaps, 0...15)
            try check("progress-bound", progressBound, 1...30)
        }
    }

    public let config: Configuration

    /// - Throws: `.invalidArgument` for a configuration out of range.
    public init(_ config: Configuration) throws {
        try config.validate()
        self.config = config
    }

    public var initialStates: [State] {
        var s = State()
        for r in 0..<config.ranges { s.setBitmap(r, 1) }
        s.splitsLeft = config.splits
        s.conversionsLeft = config.conversions
        s.zapsLeft = config.zaps
        return [s]
    }

    /// The invariants this model checks, by registered name.
    public static let invariants: [(name: String, meaning: String)] = [
        ("guest.never-touch-unaccepted", "a vCPU touched private memory that is not accepted (MAPPED) at every page"),
        ("guest.accept-succeeds", "tdx_accept_memory() failed (a 4K ACCEPT returned non-zero): the kernel panics"),
        ("guest.no-double-accept", "an ACCEPT succeeded on a page whose range the guest had written: its data was zeroed"),
        ("guest.accepting-list-exclusive", "two vCPUs inside arch_accept_memory() on the same range with the accepting list on"),
        ("host.no-double-level-mapping", "a range has 4K leaves and a 2M leaf (or no 4K table) at once"),
        ("host.mirror-agrees-with-sept", "KVM's mirror level of a range disagrees with its S-EPT entry"),
        ("guest.accept-progress", "one accept_memory() of one range took more ACCEPT calls than progress-bound (livelock)"),
    ]
}

extension AcceptanceCore {
    /// One actor's call. vCPU steps are deterministic (a vCPU has at most
    /// one enabled step: the next of its program), so a vCPU action is the
    /// vCPU; the host's carry their target.
    public struct Action: Hashable, Sendable, CustomStringConvertible {
        public enum Kind: UInt8, Sendable {
            /// vCPU `index` takes its next step.
            case vcpu
            /// The host handles vCPU `index`'s EPT violation.
            case eptViolation
            /// TDH.MEM.RANGE.BLOCK of range `index`'s 2M leaf.
            case block
            /// TDH.MEM.TRACK for range `index`.
            case track
            /// TDH.MEM.PAGE.DEMOTE of range `index`.
            case demote
            /// The guest's MapGPA(shared) of range `index`: KVM zaps it.
            case convertShared
            /// The VMM converts range `index` back to private on a vCPU's fault.
            case convertPrivate
            /// An adversarial host punches a hole in range `index`.
            case zap
            /// The host returns from vCPU `index`'s EPT violation without
            /// AUG (`refuse-aug`): the vCPU re-executes its ACCEPT.
            case refuseAUG
        }
        public let kind: Kind
        public let index: UInt8

        public init(_ kind: Kind, _ index: Int) {
            self.kind = kind
            self.index = UInt8(index)
        }

        public var description: String {
            switch kind {
            case .vcpu: "vcpu\(index) step"
            case .eptViolation: "host ept-violation vcpu\(index)"
            case .block: "host block range\(index)"
            case .track: "host track range\(index)"
            case .demote: "host demote range\(index)"
            case .convertShared: "vmm convert-shared range\(index)"
            case .convertPrivate: "vmm convert-private range\(index)"
            case .zap: "host punch-hole range\(index)"
            case .refuseAUG: "host refuse-aug vcpu\(index)"
            }
        }
    }

    public func actor(of a: Action) -> ActorID {
        switch a.kind {
        case .vcpu: .vcpu(Int(a.index))
        case .convertShared, .convertPrivate: .vmm
        default: .host
        }
    }
}
