import MemoryModel

/// The makedumpfile release whose page filter is modelled. They differ in
/// how they read 6.x struct pages (makedumpfile.c `__exclude_unnecessary_pages()`):
/// - 1.7.2 (Debian 12): no folio order or hugetlb detection for kernels
///   without `compound_order` offsets (every compound head has order 0, so
///   a THP tail is dumped); `isSlab()` and `page_is_buddy_v3()` test only the
///   `PG_slab` flag bit; `isAnon()` is `mapping & 1`.
/// - 1.7.7: the 6.12 page types by exact equality (`isSlab()` also by
///   `PAGE_SLAB_MAPCOUNT_VALUE`, buddy only if not slab, anon only if not
///   slab), folio order from `_flags_1 & 0xff` and hugetlb by
///   `PAGE_HUGETLB_MAPCOUNT_VALUE`.
/// - 1.7.8: 1.7.7 plus commit c1a930185482: with dump level bit 16, a head
///   whose `_mapcount` is `PAGE_UNACCEPTED_MAPCOUNT_VALUE` excludes
///   `1 << (LENGTH(zone.free_area) - 1)` pages, counted as free.
/// - From 1.7.6 (so every modelled release but 1.7.2), `exclude_nodata_pages()`
///   starts after the page holding a PT_LOAD's last stored byte (f2c5f76,
///   `nodataRoundsUp`).
/// - 1.7.9: 1.7.8's filter; `git log 1.7.8..1.7.9` is only eb42d63
///   "[v1.7.9] Update version".
/// - dev: 1.7.9 plus f50c015, which finds Linux 7.1's tail field.
///
/// 1.7.3 to 1.7.6 are not modelled: they have the compound-order fixes for
/// 6.3 and 6.6 (446c4f6, 9661c1d) that 1.7.2 lacks, and 1.7.6 the 6.9
/// hugetlb and 6.10 slab fixes (985e575, bad2a7c), but none has 1.7.7's
/// 6.12 typed-page detection (72c3414), so on the struct pages cocomem
/// generates (6.12 and later) each filters unlike any modelled release.
public enum MakedumpfileVersion: String, Sendable, CaseIterable {
    /// `dev`: the development branch after 1.7.9 ("1.7.9++", 3fbe2cb), whose
    /// only page-filter change is f50c015 "Fix wrong exclusion of compound
    /// tail pages on Linux 7.1 and later" (19 May 2026): when VMCOREINFO has
    /// no `OFFSET(page.compound_head)` it reads `OFFSET(page.compound_info)`
    /// into the same offset (`read_vmcoreinfo()`, `get_structure_info()`).
    /// The branch's other commits (riscv64, arm64, eppic, the extension
    /// framework, off unless asked for) do not touch x86-64 filtering.
    case v1_7_2 = "1.7.2", v1_7_7 = "1.7.7", v1_7_8 = "1.7.8", v1_7_9 = "1.7.9", dev = "dev"

    /// The filter this release runs (1.7.9 and dev run 1.7.8's; dev also
    /// reads `page.compound_info`, `readsCompoundInfo`).
    public var profile: MakedumpfileVersion { self == .v1_7_9 || self == .dev ? .v1_7_8 : self }

    /// f50c015: the offset of a tail's `compound_head` word is also taken
    /// from `OFFSET(page.compound_info)` (Linux 7.1's name). Every release up
    /// to 1.7.9 reads only `OFFSET(page.compound_head)`; without it the
    /// `compound_head` it tests stays 0, so no page is a tail and the chain
    /// runs on every tail page.
    public var readsCompoundInfo: Bool { self == .dev }

    /// Whether `exclude_nodata_pages()` starts at the page after the end of
    /// a PT_LOAD's file data (`roundup()`, f2c5f76 "Fix incorrect page
    /// exclusion in exclude_nodata_pages()", in 1.7.6 and later) rather than
    /// at the page holding it (1.7.2, which also clears that partly stored
    /// page). `ELFInput.nodataFrames(roundsUp:)`.
    public var nodataRoundsUp: Bool { self != .v1_7_2 }

    /// Parses a makedumpfile release (`1.7.8`, as `makedumpfile -v` prints it).
    /// - Throws: `CocomemError(.invalidArgument)`: unknown releases list the
    ///   known ones; 1.7.3 to 1.7.6 say why they are not modelled.
    /// - Complexity: O(1).
    public static func parse(_ text: String) throws -> MakedumpfileVersion {
        if let v = MakedumpfileVersion(rawValue: text) { return v }
        let known = allCases.map(\.rawValue).joined(separator: ", ")
        if ["1.7.3", "1.7.4", "1.7.5", "1.7.6"].contains(text) {
            throw CocomemError(.invalidArgument, "makedumpfile \(text) is not modelled: it has the 6.3/6.6 compound-page fixes 1.7.2 lacks but not 1.7.7's 6.12 typed-page detection (72c3414), so it filters 6.12+ struct pages unlike any modelled release; nearest modelled: 1.7.2, 1.7.7")
        }
        throw CocomemError(.invalidArgument, "makedumpfile '\(text)' is not a release cocomem knows; known: \(known)")
    }
}

/// The VMCOREINFO values the filter reads (`read_vmcoreinfo()`), parsed
/// from the note text. Absent numbers are nil (makedumpfile's NOT_FOUND).
public struct VmcoreinfoNumbers: Sendable, Equatable {
    public var numbers: [String: Int64] = [:]
    public var lengths: [String: Int64] = [:]
    public var offsets: [String: Int64] = [:]
    public var sizes: [String: Int64] = [:]
    /// `SYMBOL(name)=%lx` addresses.
    public var symbols: [String: UInt64] = [:]

    public init(text: String) { self.init(text: text, bytewise: true) }

    /// `bytewise` reads the text a line at a time from its UTF-8 bytes
    /// (lines end at `\n`, `\r` dropped at either end, as `splitLines()`
    /// reads them: a `\n` or `\r` byte is always a `Character` boundary, and
    /// `\r\n` one `Character`), and an all-ASCII line a byte at a time, which
    /// is what the reading costs in a dump; a line with other bytes (a
    /// corrupt note) goes through `Character`s, as does every line with
    /// `bytewise` false (`splitLines()` over the whole text). Both give the
    /// same numbers (`VmcoreinfoParsingTests`). A single non-ASCII byte used
    /// to send the whole text through `Character`s (the elf fuzzer's mutated
    /// notes spent a tenth of their time there).
    init(text: String, bytewise: Bool) {
        guard bytewise else {
            for line in text.splitLines() { take(line: line) }
            return
        }
        var text = text
        text.withUTF8 { bytes in
            var start = 0
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: 0x0a) ?? bytes.count
                var a = start, b = end
                while a < b, bytes[a] == 0x0d { a += 1 }
                while b > a, bytes[b - 1] == 0x0d { b -= 1 }
                let line = UnsafeBufferPointer(rebasing: bytes[a..<b])
                if !line.allSatisfy({ $0 < 0x80 }) {
                    take(line: String(decoding: line, as: UTF8.self)[...])
                } else if let eq = line.firstIndex(of: 0x3d) {
                    take(asciiKey: UnsafeBufferPointer(rebasing: line[..<eq]), value: UnsafeBufferPointer(rebasing: line[(eq + 1)...]))
                }
                start = end + 1
            }
        }
    }

    /// One line, read by `Character`s: `KEY=value` at its first `=`.
    private mutating func take(line: Substring) {
        guard let eq = line.firstIndex(of: "=") else { return }
        take(key: line[..<eq], value: line[line.index(after: eq)...])
    }

    /// The keys read, as bytes, in `take(key:value:)`'s order: `SYMBOL(`
    /// (a hex value), `NUMBER(`, `LENGTH(`, `OFFSET(`, `SIZE(`.
    private static let keyPrefixes: [[UInt8]] = ["SYMBOL(", "NUMBER(", "LENGTH(", "OFFSET(", "SIZE("].map { Array($0.utf8) }

    /// One all-ASCII `KEY=value` line, as `take(key:value:)` reads it (for
    /// ASCII a byte is a `Character`), but matching the key on its bytes and
    /// making Strings only of a key that names something: the prefix and
    /// the closing `)` first, then the value as `take(key:value:)` parses it.
    private mutating func take(asciiKey key: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        guard key.last == 0x29 else { return }   // ")"
        guard let i = Self.keyPrefixes.firstIndex(where: { key.count > $0.count && key.starts(with: $0) }) else { return }
        let name = String(decoding: UnsafeBufferPointer(rebasing: key[Self.keyPrefixes[i].count..<(key.count - 1)]), as: UTF8.self)
        let text = String(decoding: value, as: UTF8.self)[...]
        if i == 0 {
            if let a = UInt64(text, radix: 16) { symbols[name] = a }
            return
        }
        guard let v = Self.integer(text) else { return }
        switch i {
        case 1: numbers[name] = v
        case 2: lengths[name] = v
        case 3: offsets[name] = v
        default: sizes[name] = v
        }
    }

    /// strtol(): decimal first, then hex (NUMBER(VMALLOC_START) is 0x-prefixed).
    private static func integer(_ value: Substring) -> Int64? {
        Int64(value) ?? (value.hasPrefix("0x") ? UInt64(value.dropFirst(2), radix: 16).map { Int64(bitPattern: $0) } : nil)
    }

    /// One `KEY=value` line.
    private mutating func take(key: Substring, value: Substring) {
        if key.hasPrefix("SYMBOL("), key.hasSuffix(")"), let a = UInt64(value, radix: 16) {
            symbols[String(key.dropFirst(7).dropLast())] = a
            return
        }
        guard let v = Self.integer(value) else { return }
        func name(_ p: String) -> String? { key.hasPrefix(p) && key.hasSuffix(")") ? String(key.dropFirst(p.count).dropLast()) : nil }
        if let n = name("NUMBER(") { numbers[n] = v } else if let n = name("LENGTH(") { lengths[n] = v }
        else if let n = name("OFFSET(") { offsets[n] = v } else if let n = name("SIZE(") { sizes[n] = v }
    }

    /// makedumpfile treats a value of -1 as not found.
    func number(_ n: String) -> Int64? { numbers[n].flatMap { $0 == -1 ? nil : $0 } }
    func offset(_ n: String) -> UInt64? { offsets[n].flatMap { $0 < 0 ? nil : UInt64($0) } }
}

/// Pages excluded by kind, as makedumpfile counts them (`pfn_cache`, ...).
public struct ExclusionCounts: Sendable, Equatable {
    public var cache: UInt64 = 0, privateCache: UInt64 = 0, user: UInt64 = 0, free: UInt64 = 0
    public var hwpoison: UInt64 = 0, offline: UInt64 = 0
    public init() {}
}

/// makedumpfile's page filter (`create_2nd_bitmap()` and
/// `__exclude_unnecessary_pages()`), on struct pages.
public struct MakedumpfileFilter: Sendable {
    public enum Kind: Sendable, Equatable { case cache, privateCache, user, free, hwpoison, offline }
    /// What the chain does at one PFN.
    public enum Decision: Sendable, Equatable {
        case keep
        /// A compound tail (`compound_head & 1`): skipped, its head decides.
        case tail
        case exclude(Kind, pages: UInt64)
    }

    /// The filter profile (`MakedumpfileVersion.profile` of the release asked for).
    public let version: MakedumpfileVersion
    public let dumpLevel: Int
    /// Whether a tail's `compound_head` word is read at all: VMCOREINFO has
    /// `OFFSET(page.compound_head)`, or `OFFSET(page.compound_info)` for a
    /// release that reads it (f50c015). When false makedumpfile's
    /// `compound_head` stays 0 and `compound_head & 1` never skips a page.
    public let recognisesTails: Bool
    let n: VmcoreinfoNumbers
    // Resolved numbers (get_value_for_old_linux() substitutes PG_slab = 7 on 6.10+ kernels).
    let pgLRU: Int, pgPrivate: Int, pgSwapcache: Int, pgSwapbacked: Int?, pgHWPoison: Int?, pgSlab: Int
    let headMask: UInt64
    let buddy: Int64?, hugetlb: Int64?, offline: Int64?, slab: Int64?, unaccepted: Int64?
    let maxOrder: Int64?

    public init(version: MakedumpfileVersion, dumpLevel: Int, vmcoreinfo: String) {
        self.version = version.profile
        self.dumpLevel = dumpLevel
        n = VmcoreinfoNumbers(text: vmcoreinfo)
        recognisesTails = n.offset("page.compound_head") != nil || (version.readsCompoundInfo && n.offset("page.compound_info") != nil)
        pgLRU = Int(n.number("PG_lru") ?? 5)
        pgPrivate = Int(n.number("PG_private") ?? 11)
        pgSwapcache = Int(n.number("PG_swapcache") ?? 15)
        pgSwapbacked = n.number("PG_swapbacked").map(Int.init)
        pgHWPoison = n.number("PG_hwpoison").map(Int.init)
        pgSlab = Int(n.number("PG_slab") ?? 7)
        headMask = UInt64(bitPattern: n.number("PG_head_mask") ?? 1 << 16)
        buddy = n.number("PAGE_BUDDY_MAPCOUNT_VALUE"); hugetlb = n.number("PAGE_HUGETLB_MAPCOUNT_VALUE")
        offline = n.number("PAGE_OFFLINE_MAPCOUNT_VALUE"); slab = n.number("PAGE_SLAB_MAPCOUNT_VALUE")
        unaccepted = n.number("PAGE_UNACCEPTED_MAPCOUNT_VALUE")
        maxOrder = n.lengths["zone.free_area"]
        hasPageIsBuddy = n.offsets["page.private"] != nil && n.offsets["page._mapcount"] != nil && buddy != nil
    }

    /// `page_is_buddy` is set (`setup_page_is_buddy()`: v3 needs
    /// `OFFSET(page.private)`, `OFFSET(page._mapcount)` and the buddy value).
    /// Resolved once: `decide` asks for every struct page, and two lookups
    /// by name per page were 4% of a `-d 31` conversion's cycles.
    let hasPageIsBuddy: Bool

    /// `create_2nd_bitmap()` walks the mem_map only when something needs it.
    public var walksMemMap: Bool {
        dumpLevel & (2 | 4 | 8) != 0 || pgHWPoison != nil || (dumpLevel & 16 != 0 && hasPageIsBuddy)
    }

    /// makedumpfile's `test_bit()`: an int mask `1 << (nr & 0x1f)`,
    /// sign-extended, so bit 31 also matches bits 32-63 and bits above 31 wrap.
    public static func testBit(_ nr: Int, _ flags: UInt64) -> Bool {
        flags & UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: 1 << (nr & 0x1f)))) != 0
    }

    /// Bit `nr` of `flags`, for a bit number from VMCOREINFO (false for one
    /// outside 0...63, where C's shift would be undefined).
    static func bit(_ nr: Int, _ flags: UInt64) -> Bool { (0..<64).contains(nr) && flags & (1 << UInt64(nr)) != 0 }

    /// `1 << order` pages for an order read from the file (a struct page's
    /// `private`, `LENGTH(zone.free_area)`), or nil where the order is not
    /// a valid shift: the page is then kept, as makedumpfile keeps a free
    /// page of an invalid order.
    static func pages(order: Int64) -> UInt64? { (0..<64).contains(order) ? 1 << UInt64(order) : nil }

    func isSlab(_ p: StructPage) -> Bool {
        let flag = Self.bit(pgSlab, p.flags)
        switch version {
        case .v1_7_2: return flag
        case .v1_7_7, .v1_7_8, .v1_7_9, .dev: return (slab.map { Int32(bitPattern: p.mapcount) == Int32(truncatingIfNeeded: $0) } ?? false) || flag
        }
    }

    func isAnon(_ p: StructPage) -> Bool {
        p.mapping & 1 != 0 && (version == .v1_7_2 || !isSlab(p))
    }

    func isCachePage(_ p: StructPage) -> Bool {
        if Self.testBit(pgLRU, p.flags) { return true }
        return (pgSwapbacked.map { Self.testBit($0, p.flags) } ?? true) && Self.testBit(pgSwapcache, p.flags)
    }

    func matches(_ p: StructPage, _ value: Int64?) -> Bool {
        value.map { Int32(bitPattern: p.mapcount) == Int32(truncatingIfNeeded: $0) } ?? false
    }

    /// The decision chain for the struct page at `pfn` (first match wins).
    /// `next` is the following struct page when it is in the same 512-page
    /// read batch (`PGMM_CACHED`): a head in the batch's last slot is not
    /// recognised as compound.
    public func decide(_ p: StructPage, next: StructPage?, pfn: UInt64) -> Decision {
        var order: UInt64 = 0
        var isHugetlb = false
        if pfn % 512 < 511, p.flags & headMask != 0, let next {
            switch version {
            case .v1_7_2:
                break   // no OFFSET(page.compound_order) on 6.6+ kernels: order stays 0
            case .v1_7_7, .v1_7_8, .v1_7_9, .dev:
                if hugetlb != nil {
                    order = next.flags & 0xff
                    isHugetlb = matches(p, hugetlb)
                }
            }
            if order >= 64 || pfn & ((1 << order) - 1) != 0 { order = 0 }
        }
        if recognisesTails, p.compoundHead & 1 != 0 { return .tail }
        let slabPage = isSlab(p)
        let buddyPage: Bool = {
            guard hasPageIsBuddy else { return false }
            switch version {
            case .v1_7_2: return !Self.bit(pgSlab, p.flags) && matches(p, buddy)
            case .v1_7_7, .v1_7_8, .v1_7_9, .dev: return !slabPage && matches(p, buddy)
            }
        }()
        if dumpLevel & 16 != 0, buddyPage {
            if let m = maxOrder, Int64(bitPattern: p.privateValue) >= m { return .keep }   // "Invalid free page order" warning
            guard let pages = Self.pages(order: Int64(bitPattern: p.privateValue)) else { return .keep }
            return .exclude(.free, pages: pages)
        }
        if version == .v1_7_8, dumpLevel & 16 != 0, matches(p, unaccepted) {
            guard let pages = Self.pages(order: (maxOrder ?? 11) &- 1) else { return .keep }
            return .exclude(.free, pages: pages)
        }
        let anon = isAnon(p)
        if dumpLevel & 2 != 0, isCachePage(p), !Self.testBit(pgPrivate, p.flags), !anon {
            return .exclude(.cache, pages: 1 << order)
        }
        if dumpLevel & 4 != 0, isCachePage(p), !anon {
            return .exclude(Self.testBit(pgPrivate, p.flags) ? .privateCache : .cache, pages: 1 << order)
        }
        if dumpLevel & 8 != 0, anon || isHugetlb {
            return .exclude(.user, pages: 1 << order)
        }
        if let hw = pgHWPoison, Self.testBit(hw, p.flags) { return .exclude(.hwpoison, pages: 1 << order) }
        if offline != nil, !slabPage, matches(p, offline) { return .exclude(.offline, pages: 1 << order) }
        return .keep
    }
}
