extension AcceptanceCore {
    /// An S-EPT entry state of the module (`SEPTState`), as a small code.
    public enum Entry: UInt64, Sendable, CaseIterable, CustomStringConvertible {
        case free = 0, pending, mapped, pendingBlocked, blocked, nlMapped, nlBlocked

        public var description: String {
            switch self {
            case .free: "FREE"
            case .pending: "PENDING"
            case .mapped: "MAPPED"
            case .pendingBlocked: "PENDING_BLOCKED"
            case .blocked: "BLOCKED"
            case .nlMapped: "NL_MAPPED"
            case .nlBlocked: "NL_BLOCKED"
            }
        }
        /// A 2M leaf blocked for a split (KVM's mirror entry is frozen).
        var isBlockedLeaf: Bool { self == .pendingBlocked || self == .blocked }
        var isLeaf2M: Bool { self == .pending || self == .mapped }
    }

    /// KVM's mirror entry for a range.
    public enum Mirror: UInt64, Sendable, CustomStringConvertible {
        case none = 0, leaf2M, frozen, table4K
        public var description: String {
            switch self {
            case .none: "none"
            case .leaf2M: "2M"
            case .frozen: "frozen"
            case .table4K: "4K-table"
            }
        }
    }

    /// Why the TD died, if it did.
    public enum Fatal: UInt64, Sendable {
        case none = 0, touchedUnaccepted, acceptFailed, doubleAccept
    }

    /// Where a vCPU is inside `accept_memory()` of its current range.
    public enum Phase: UInt64, Sendable {
        /// Before the bitmap and accepting-list check (or at a touch).
        case check = 0
        /// The next call is a 2M ACCEPT.
        case accept2M
        /// The next call is a 4K ACCEPT of page `sub`.
        case accept4K
        /// The range is accepted; the bitmap clear and list removal are next.
        case finish
    }

    /// The whole state in two words, fixed width, so the state is its own
    /// packed encoding (`packedWords` 2).
    ///
    /// `lo`: per range `r`, 18 bits at `18 r`: unaccepted bit (1), on the
    /// accepting list (1), S-EPT 2M entry (3), mirror (2), tracked (1),
    /// shared (1), written by the guest (1), four 4K entries (2 each); the
    /// fatal code at bit 54 (2). `hi`: per vCPU `v`, 13 bits at `13 v`:
    /// program counter (3), phase (2), 4K page (2), waiting for the host
    /// (1), ACCEPT calls in this accept (5); then the budgets at bit 39:
    /// splits (4), conversions (4), zaps (4).
    public struct State: Hashable, Sendable {
        public var lo: UInt64 = 0
        public var hi: UInt64 = 0

        public init() {}
        public init(lo: UInt64, hi: UInt64) {
            self.lo = lo
            self.hi = hi
        }

        @inline(__always) static func get(_ w: UInt64, _ shift: Int, _ width: Int) -> UInt64 {
            (w >> UInt64(shift)) & ((1 << UInt64(width)) - 1)
        }
        @inline(__always) static func set(_ w: inout UInt64, _ shift: Int, _ width: Int, _ v: UInt64) {
            let m: UInt64 = ((1 << UInt64(width)) - 1) << UInt64(shift)
            w = (w & ~m) | ((v << UInt64(shift)) & m)
        }

        // Ranges.
        @inline(__always) func bitmap(_ r: Int) -> Bool { Self.get(lo, 18 * r, 1) != 0 }
        @inline(__always) mutating func setBitmap(_ r: Int, _ v: UInt64) { Self.set(&lo, 18 * r, 1, v) }
        @inline(__always) func listed(_ r: Int) -> Bool { Self.get(lo, 18 * r + 1, 1) != 0 }
        @inline(__always) mutating func setListed(_ r: Int, _ v: Bool) { Self.set(&lo, 18 * r + 1, 1, v ? 1 : 0) }
        @inline(__always) func entry(_ r: Int) -> Entry { Entry(rawValue: Self.get(lo, 18 * r + 2, 3)) ?? .free }
        @inline(__always) mutating func setEntry(_ r: Int, _ e: Entry) { Self.set(&lo, 18 * r + 2, 3, e.rawValue) }
        @inline(__always) func mirror(_ r: Int) -> Mirror { Mirror(rawValue: Self.get(lo, 18 * r + 5, 2)) ?? .none }
        @inline(__always) mutating func setMirror(_ r: Int, _ m: Mirror) { Self.set(&lo, 18 * r + 5, 2, m.rawValue) }
        @inline(__always) func tracked(_ r: Int) -> Bool { Self.get(lo, 18 * r + 7, 1) != 0 }
        @inline(__always) mutating func setTracked(_ r: Int, _ v: Bool) { Self.set(&lo, 18 * r + 7, 1, v ? 1 : 0) }
        @inline(__always) func shared(_ r: Int) -> Bool { Self.get(lo, 18 * r + 8, 1) != 0 }
        @inline(__always) mutating func setShared(_ r: Int, _ v: Bool) { Self.set(&lo, 18 * r + 8, 1, v ? 1 : 0) }
        @inline(__always) func written(_ r: Int) -> Bool { Self.get(lo, 18 * r + 9, 1) != 0 }
        @inline(__always) mutating func setWritten(_ r: Int, _ v: Bool) { Self.set(&lo, 18 * r + 9, 1, v ? 1 : 0) }
        /// The 4K entry of page `k` (FREE, PENDING or MAPPED).
        @inline(__always) func page(_ r: Int, _ k: Int) -> Entry { Entry(rawValue: Self.get(lo, 18 * r + 10 + 2 * k, 2)) ?? .free }
        @inline(__always) mutating func setPage(_ r: Int, _ k: Int, _ e: Entry) { Self.set(&lo, 18 * r + 10 + 2 * k, 2, e.rawValue) }
        /// Every 4K entry of range `r` FREE.
        @inline(__always) mutating func clearPages(_ r: Int) { Self.set(&lo, 18 * r + 10, 8, 0) }
        @inline(__always) func pagesAllFree(_ r: Int) -> Bool { Self.get(lo, 18 * r + 10, 8) == 0 }
        var fatal: Fatal {
            get { Fatal(rawValue: Self.get(lo, 54, 2)) ?? .none }
            set { Self.set(&lo, 54, 2, newValue.rawValue) }
        }

        // vCPUs.
        @inline(__always) func pc(_ v: Int) -> Int { Int(Self.get(hi, 13 * v, 3)) }
        @inline(__always) mutating func setPC(_ v: Int, _ x: Int) { Self.set(&hi, 13 * v, 3, UInt64(x)) }
        @inline(__always) func phase(_ v: Int) -> Phase { Phase(rawValue: Self.get(hi, 13 * v + 3, 2)) ?? .check }
        @inline(__always) mutating func setPhase(_ v: Int, _ p: Phase) { Self.set(&hi, 13 * v + 3, 2, p.rawValue) }
        @inline(__always) func sub(_ v: Int) -> Int { Int(Self.get(hi, 13 * v + 5, 2)) }
        @inline(__always) mutating func setSub(_ v: Int, _ k: Int) { Self.set(&hi, 13 * v + 5, 2, UInt64(k)) }
        @inline(__always) func waiting(_ v: Int) -> Bool { Self.get(hi, 13 * v + 7, 1) != 0 }
        @inline(__always) mutating func setWaiting(_ v: Int, _ w: Bool) { Self.set(&hi, 13 * v + 7, 1, w ? 1 : 0) }
        @inline(__always) func attempts(_ v: Int) -> Int { Int(Self.get(hi, 13 * v + 8, 5)) }
        @inline(__always) mutating func setAttempts(_ v: Int, _ n: Int) { Self.set(&hi, 13 * v + 8, 5, UInt64(n)) }
        /// vCPU `v`'s 13 bits.
        @inline(__always) func vcpuBits(_ v: Int) -> UInt64 { Self.get(hi, 13 * v, 13) }
        @inline(__always) mutating func setVcpuBits(_ v: Int, _ b: UInt64) { Self.set(&hi, 13 * v, 13, b) }

        // Budgets.
        var splitsLeft: Int {
            get { Int(Self.get(hi, 39, 4)) }
            set { Self.set(&hi, 39, 4, UInt64(newValue)) }
        }
        var conversionsLeft: Int {
            get { Int(Self.get(hi, 43, 4)) }
            set { Self.set(&hi, 43, 4, UInt64(newValue)) }
        }
        var zapsLeft: Int {
            get { Int(Self.get(hi, 47, 4)) }
            set { Self.set(&hi, 47, 4, UInt64(newValue)) }
        }
    }

    public var packedWords: Int { 2 }

    public func pack(_ s: State, into words: UnsafeMutableBufferPointer<UInt64>) {
        words[0] = s.lo
        words[1] = s.hi
    }

    public func unpack(_ words: UnsafeBufferPointer<UInt64>) -> State {
        State(lo: words[0], hi: words[1])
    }

    /// Symmetry over the identical vCPUs: the state with the vCPUs' 13-bit
    /// fields sorted. Nothing outside a vCPU's field names a vCPU (the
    /// accepting list records a range, not its owner), so permuting the
    /// fields maps reachable states to reachable states, and every
    /// invariant is blind to vCPU identity.
    /// - Complexity: O(vCPUs²), at most 3 compare-and-swaps.
    public func canonical(_ s: State) -> State {
        guard config.vcpus > 1 else { return s }
        var t = s
        var b0 = s.vcpuBits(0), b1 = s.vcpuBits(1)
        if b0 > b1 { swap(&b0, &b1) }
        if config.vcpus == 3 {
            var b2 = s.vcpuBits(2)
            if b1 > b2 { swap(&b1, &b2) }
            if b0 > b1 { swap(&b0, &b1) }
            t.setVcpuBits(2, b2)
        }
        t.setVcpuBits(0, b0)
        t.setVcpuBits(1, b1)
        return t
    }
}
