/// The fast engine's stores of visited states: each maps a state to the
/// index it was first stored at (its place in breadth-first order).
protocol StateTable<State> {
    associatedtype State
    /// Stores `s` if it is new. Returns its index and whether it was new.
    mutating func insert(_ s: State) -> (index: Int, inserted: Bool)
    var count: Int { get }
    /// Bytes held by the store (capacities, not counts).
    var bytes: Int { get }
}

/// A store that can also look a state up without storing it (the cycle
/// search, once its state bound is reached, still follows edges into
/// states it has).
protocol LookupStateTable<State>: StateTable {
    mutating func find(_ s: State) -> Int?
}

extension PackedStateTable: LookupStateTable {}
extension ValueStateTable: LookupStateTable {}

/// A 64-bit mix of fixed-width words (splitmix64's finalizer per word):
/// deterministic, the same in every process, unlike `Hasher`.
@inline(__always) func mixWords(_ p: UnsafeBufferPointer<UInt64>) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15
    for w in p {
        h ^= w
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9 // splitmix64's constants, not a page shift
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB // (likewise)
        h ^= h >> 31
    }
    return h
}

/// Packed states in one flat array of words, `width` per state, and an
/// open-addressing table (linear probing, load at most 1/2) whose slots
/// hold a state's index (low 32 bits) and the top 32 bits of its hash, so
/// a probe that meets another state rarely reads that state's words (one
/// cache miss instead of two): `8 × width + 8 × 2..4` bytes a state.
struct PackedStateTable<System: TransitionSystem>: StateTable {
    typealias State = System.State
    let system: System
    let width: Int
    var words: [UInt64] = []
    var slots: [UInt64]
    var mask: Int
    var count = 0
    var scratch: [UInt64]

    /// `slots`: the table's first size (a power of two); it doubles as it fills.
    init(_ system: System, slots first: Int = 1 << 16) {
        self.system = system
        width = system.packedWords
        slots = Array(repeating: 0, count: first)
        mask = first - 1
        scratch = Array(repeating: 0, count: width)
    }

    var bytes: Int { doublingCapacity(words.count) * 8 + slots.count * 8 }

    @inline(__always) static func fingerprint(_ h: UInt64) -> UInt64 { h & 0xFFFF_FFFF_0000_0000 }

    mutating func insert(_ s: State) -> (index: Int, inserted: Bool) {
        if 2 * (count + 1) > slots.count { grow() }
        let w = width, sys = system
        scratch.withUnsafeMutableBufferPointer { sys.pack(s, into: $0) }
        let h = scratch.withUnsafeBufferPointer { mixWords($0) }
        let fp = Self.fingerprint(h)
        let m = mask
        let found: Int? = slots.withUnsafeBufferPointer { sl in
            words.withUnsafeBufferPointer { ws in
                scratch.withUnsafeBufferPointer { sc in
                    var i = Int(truncatingIfNeeded: h) & m
                    while true {
                        let slot = sl[i]
                        if slot == 0 { return -1 - i }
                        if slot & 0xFFFF_FFFF_0000_0000 == fp {
                            let k = Int(slot & 0xFFFF_FFFF) - 1
                            let base = k * w
                            var same = true
                            for j in 0..<w where ws[base + j] != sc[j] {
                                same = false
                                break
                            }
                            if same { return k }
                        }
                        i = (i + 1) & m
                    }
                }
            }
        }
        let f = found!
        if f >= 0 { return (f, false) }
        slots[-1 - f] = fp | UInt64(count + 1)
        words.append(contentsOf: scratch)
        count += 1
        return (count - 1, true)
    }

    /// The index `s` is stored at, nil if it is not stored (the same probe
    /// as `insert`, kept apart so that the engine's hot path is untouched).
    mutating func find(_ s: State) -> Int? {
        let w = width, sys = system
        scratch.withUnsafeMutableBufferPointer { sys.pack(s, into: $0) }
        let h = scratch.withUnsafeBufferPointer { mixWords($0) }
        let fp = Self.fingerprint(h)
        var i = Int(truncatingIfNeeded: h) & mask
        while slots[i] != 0 {
            if slots[i] & 0xFFFF_FFFF_0000_0000 == fp {
                let k = Int(slots[i] & 0xFFFF_FFFF) - 1
                if (0..<w).allSatisfy({ words[k * w + $0] == scratch[$0] }) { return k }
            }
            i = (i + 1) & mask
        }
        return nil
    }

    mutating func grow() {
        let n = slots.count * 2
        slots = Array(repeating: 0, count: n)
        mask = n - 1
        let w = width, m = mask, c = count
        words.withUnsafeBufferPointer { all in
            slots.withUnsafeMutableBufferPointer { sl in
                for k in 0..<c {
                    let h = mixWords(UnsafeBufferPointer(rebasing: all[(k * w)..<(k * w + w)]))
                    var i = Int(truncatingIfNeeded: h) & m
                    while sl[i] != 0 { i = (i + 1) & m }
                    sl[i] = Self.fingerprint(h) | UInt64(k + 1)
                }
            }
        }
    }
}

/// States kept as values (a model without a packed encoding), found
/// through an open-addressing table of indices keyed by `hashValue`.
struct ValueStateTable<State: Hashable>: StateTable {
    var states: [State] = []
    var hashes: [Int] = []
    var slots: [UInt32] = Array(repeating: 0, count: 4096)
    var mask = 4095
    var count: Int { states.count }
    var bytes: Int { doublingCapacity(states.count) * MemoryLayout<State>.stride + doublingCapacity(hashes.count) * 8 + slots.count * 4 }

    /// The index `s` is stored at, nil if it is not stored.
    func find(_ s: State) -> Int? {
        let h = s.hashValue
        var i = h & mask
        while slots[i] != 0 {
            let k = Int(slots[i] - 1)
            if hashes[k] == h && states[k] == s { return k }
            i = (i + 1) & mask
        }
        return nil
    }

    mutating func insert(_ s: State) -> (index: Int, inserted: Bool) {
        if 2 * (count + 1) > slots.count { grow() }
        let h = s.hashValue
        var i = h & mask
        while slots[i] != 0 {
            let k = Int(slots[i] - 1)
            if hashes[k] == h && states[k] == s { return (k, false) }
            i = (i + 1) & mask
        }
        slots[i] = UInt32(count + 1)
        states.append(s)
        hashes.append(h)
        return (count - 1, true)
    }

    mutating func grow() {
        let n = slots.count * 2
        slots = Array(repeating: 0, count: n)
        mask = n - 1
        for k in 0..<count {
            var i = hashes[k] & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = UInt32(k + 1)
        }
    }
}

/// Hash compaction (Wolper and Leroy): only a 64-bit hash of each state
/// is kept, 8 bytes a slot. Two states with the same hash are taken for
/// one, so the search may miss states (and the violations behind them);
/// `omissionProbability` bounds the chance that any state was missed.
struct CompactStateTable<System: TransitionSystem>: StateTable {
    typealias State = System.State
    let system: System
    var slots: [UInt64] = Array(repeating: 0, count: 1 << 16)
    var mask = (1 << 16) - 1
    var count = 0
    var scratch: [UInt64]

    init(_ system: System) {
        self.system = system
        scratch = Array(repeating: 0, count: max(system.packedWords, 1))
    }

    var bytes: Int { slots.count * 8 }

    func hash(_ s: State) -> UInt64 {
        guard system.packedWords > 0 else { return UInt64(bitPattern: Int64(s.hashValue)) }
        var sc = scratch
        sc.withUnsafeMutableBufferPointer { system.pack(s, into: $0) }
        return sc.withUnsafeBufferPointer { mixWords($0) }
    }

    mutating func insert(_ s: State) -> (index: Int, inserted: Bool) {
        if 2 * (count + 1) > slots.count { grow() }
        var h = hash(s)
        if h == 0 { h = 1 }
        var i = Int(truncatingIfNeeded: h >> 16) & mask
        while slots[i] != 0 {
            if slots[i] == h { return (-1, false) }
            i = (i + 1) & mask
        }
        slots[i] = h
        count += 1
        return (count - 1, true)
    }

    mutating func grow() {
        let old = slots
        slots = Array(repeating: 0, count: old.count * 2)
        mask = slots.count - 1
        for h in old where h != 0 {
            var i = Int(truncatingIfNeeded: h >> 16) & mask
            while slots[i] != 0 { i = (i + 1) & mask }
            slots[i] = h
        }
    }

    /// The probability that two of `n` states share a 64-bit hash (the
    /// birthday bound n²/2⁶⁵): an upper bound on the chance that the
    /// search omitted any state.
    static func omissionProbability(states n: Int) -> Double {
        Double(n) * Double(n) / 36_893_488_147_419_103_232.0
    }
}

/// The capacity an array grown by doubling has after `count` appends: the
/// next power of two. Memory figures use it instead of `Array.capacity`,
/// which includes the allocator's slack (`malloc_usable_size`) and so can
/// differ from run to run in one process: a report must be the same bytes
/// every time.
@inline(__always) func doublingCapacity(_ count: Int) -> Int {
    count <= 1 ? count : 1 << (Int.bitWidth - (count - 1).leadingZeroBitCount)
}
