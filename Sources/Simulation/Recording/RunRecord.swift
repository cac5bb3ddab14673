public import MemoryModel

/// What a run recorded over virtual time, for the pictures, the trace file
/// and the terminal strip (issue 14). Everything here is bounded by ranges,
/// phases and a fixed number of points, never by pages: a 4 TiB, hour-long
/// run records as little as a 4 GiB one.
///
/// The simulation fills it (`Simulation/Recording/`, `Recorder`); `Reports` draws it.
/// Times are virtual seconds from the start of the run (firmware reset).
/// docs/REPORTS.md ("What a run records") lists everything below with the
/// report totals each series ends on.
///
/// Phases: `firmware`, `efi_stub`, `kernel_boot`, `deferred_init`,
/// `early_allocations`, `userspace`, `workload <workload>` (one a workload
/// phase, e.g. `workload touch=8G`); kexec adds `kexec_load`,
/// `kexec_reboot`, `next_kernel.kernel_boot` ... `next_kernel.userspace`; a
/// host run has `line N: <command>` instead.
///
/// Series (whole guest): `accepted_bytes.firmware`, `accepted_bytes.efi_stub`,
/// `accepted_bytes.kernel_boot`, `accepted_bytes.workload` (kexec also
/// `accepted_bytes.kexec_load`, `accepted_bytes.next_kernel`), cumulative
/// bytes; `unaccepted_bytes`, `free_bytes` (MemFree, from the kernel on),
/// `host_committed_private_bytes`, `host_committed_shared_bytes`;
/// `accept_calls`, `exits` (cumulative counts) and `accept_calls_per_s`,
/// `exits_per_s`. Per vCPU: `accepted_bytes`, `accept_calls`, `exits`
/// (cumulative) and `accept_calls_per_s`, `exits_per_s`.
///
/// Snapshot labels: `firmware hand-off`, `ExitBootServices`, `end of boot`,
/// `end of workload <workload>` (one a workload phase); kexec: `before
/// kexec`, `end of boot (next kernel)`; dump: `at the crash`; host: `end of host run`.
public struct RunRecord: Sendable {
    /// The phases in order (firmware, efi_stub, kernel_boot, deferred_init,
    /// early_allocations, userspace, each workload phase, kexec, the next
    /// kernel's phases, ...), with where they start and end.
    public var phases: [PhaseSpan] = []
    /// Series over virtual time (bytes accepted by each actor, unaccepted,
    /// free, host committed private and shared, exits and accept calls).
    public var series: [TimeSeries] = []
    /// Memory at each phase boundary: firmware hand-off, ExitBootServices,
    /// end of boot, end of each workload phase, before kexec, at the crash.
    public var snapshots: [MemorySnapshot] = []
    /// Per-vCPU lanes: who accepted or did what, when.
    public var lanes: [VCPULane] = []
    /// The extra time allocations paid accepting memory, per workload phase.
    public var latencies: [LatencyDistribution] = []

    public init() {}
}

/// One phase of a run on the virtual time axis.
public struct PhaseSpan: Sendable, Equatable {
    /// The phase's name as the text report prints it (`firmware`, `efi_stub`, `kernel_boot`, `workload touch=8G`, ...).
    public var name: String
    /// Virtual seconds from the start of the run.
    public var start: Double
    public var end: Double
    public init(name: String, start: Double, end: Double) { self.name = name; self.start = start; self.end = end }
}

/// A named series of (virtual time, value) points, downsampled to at most
/// `TimeSeries.maxPoints` points; the last point is always the run's final value.
public struct TimeSeries: Sendable, Equatable {
    /// At most this many points are kept per series (downsampling keeps the
    /// first, the last and the phase boundaries).
    public static let maxPoints = 512
    /// Machine name (`accepted_bytes.firmware`, `unaccepted_bytes`, `host_committed_private_bytes`, `accept_calls_per_s`, ...).
    public var name: String
    /// Unit of `value`: `bytes`, `count`, `per_second`.
    public var unit: String
    /// The vCPU this series belongs to, or nil for the whole guest.
    public var vcpu: Int?
    public var points: [Point]
    public struct Point: Sendable, Equatable {
        public var time: Double
        public var value: Double
        public init(time: Double, value: Double) { self.time = time; self.value = value }
    }
    public init(name: String, unit: String, vcpu: Int? = nil, points: [Point] = []) {
        self.name = name; self.unit = unit; self.vcpu = vcpu; self.points = points
    }
}

/// The guest's memory at one instant, as maximal ranges of guest physical
/// addresses with one state each. The ranges are sorted, do not overlap and,
/// with the holes (`acceptance == .notRAM`), cover `[0, end of last range)`.
public struct MemorySnapshot: Sendable, Equatable {
    /// Where in the run (`firmware hand-off`, `ExitBootServices`, `end of boot`, `end of workload touch=8G`, `before kexec`, `at the crash`).
    public var label: String
    /// Virtual seconds from the start of the run.
    public var time: Double
    public var ranges: [SnapshotRange]
    public init(label: String, time: Double, ranges: [SnapshotRange]) { self.label = label; self.time = time; self.ranges = ranges }
}

/// One range of a snapshot with everything the picture colours by.
public struct SnapshotRange: Sendable, Equatable {
    public var range: Range<GuestPhysicalAddress>
    public var acceptance: Acceptance
    public var pageClass: PageClass
    public var hostMapping: HostMapping
    /// Private (encrypted, guest_memfd) or shared.
    public var shared: Bool
    /// Host memory that stays pinned (guest_memfd pages the host cannot reclaim).
    public var pinned: Bool

    public enum Acceptance: String, Sendable, CaseIterable { case accepted, unaccepted, notRAM = "not_ram" }
    /// The guest kernel's use of a range (the page classes makedumpfile filters by, plus the states before the kernel runs).
    public enum PageClass: String, Sendable, CaseIterable {
        case firmware, kernel, memmap, pageTables = "page_tables", pageCache = "page_cache", anonymous, hugetlb, free, unaccepted, reserved, hole
        /// Guest memory whose use no guest model tracks: a `host` run drives the TD directly, without a kernel.
        case unknown
    }
    /// How the host maps the range in the secure EPT / NPT (or RMP page size on SNP).
    public enum HostMapping: String, Sendable, CaseIterable { case none, map4K = "4K", map2M = "2M", map1G = "1G" }

    public init(range: Range<GuestPhysicalAddress>, acceptance: Acceptance, pageClass: PageClass,
                hostMapping: HostMapping, shared: Bool = false, pinned: Bool = false) {
        self.range = range; self.acceptance = acceptance; self.pageClass = pageClass
        self.hostMapping = hostMapping; self.shared = shared; self.pinned = pinned
    }
}

/// What one vCPU did over virtual time.
public struct VCPULane: Sendable, Equatable {
    public var vcpu: Int
    public var spans: [Span]
    /// A stretch of one vCPU's time: the phase, what it did, how many bytes it accepted.
    public struct Span: Sendable, Equatable {
        public var start: Double
        public var end: Double
        public var label: String
        public var acceptedBytes: UInt64
        public init(start: Double, end: Double, label: String, acceptedBytes: UInt64 = 0) {
            self.start = start; self.end = end; self.label = label; self.acceptedBytes = acceptedBytes
        }
    }
    public init(vcpu: Int, spans: [Span] = []) { self.vcpu = vcpu; self.spans = spans }
}

/// The distribution of the extra time allocations paid in
/// `cond_accept_memory()` / `accept_page()` during one workload phase.
public struct LatencyDistribution: Sendable, Equatable {
    /// The workload phase (`touch=8G`, `rate=1G:10`, ...).
    public var phase: String
    /// `lazy` or `eager` (the run's `accept_memory=`).
    public var mode: String
    /// Number of allocations measured.
    public var allocations: UInt64
    /// Seconds of extra latency.
    public var p50: Double, p99: Double, max: Double
    /// Histogram: `buckets[i]` allocations paid between `bucketBounds[i]` and `bucketBounds[i+1]` seconds.
    public var bucketBounds: [Double]
    public var buckets: [UInt64]
    public init(phase: String, mode: String, allocations: UInt64, p50: Double, p99: Double, max: Double,
                bucketBounds: [Double], buckets: [UInt64]) {
        self.phase = phase; self.mode = mode; self.allocations = allocations
        self.p50 = p50; self.p99 = p99; self.max = max; self.bucketBounds = bucketBounds; self.buckets = buckets
    }
}
