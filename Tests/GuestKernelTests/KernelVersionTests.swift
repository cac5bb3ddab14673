import GuestKernel
import MemoryModel
import Reports
import Simulation
import TestSupport
import Testing

/// The version table against a hand-written reference (docs/VERSIONS.md):
/// for every behaviour, the releases on both sides of its mainline release
/// and of each stable backport.
@Suite struct KernelVersionTests {
    typealias B = KernelBehaviour
    /// 50e782a86c98: mainline 6.6, stable 6.5.9.
    static let list: Set<B> = [.acceptingList]
    /// 859e63b789d6 (tdx_kexec_finish()): mainline 6.11, no backport.
    static let through6_11: Set<B> = list.union([.kexecFileTopDown, .unacceptedFreeForWatermarks, .snpSVSMBelowVMPL0, .tdxKexecUnshare])
    /// 3074152e56c9 (snp_kexec_finish()): mainline 6.13, no backport.
    static let snpUnshare: Set<B> = [.snpKexecUnshare]
    static let through6_12: Set<B> = through6_11.union([.pageUnacceptedType, .acceptToPromoWatermark])
    static let through6_14: Set<B> = through6_12.union([.acceptOneBlockWhileWatermarksZero])
    /// d54d610243a4: mainline 6.15, stable 6.6.88, 6.12.25, 6.14.4.
    static let msr: Set<B> = [.snpEarlyAcceptMSR]
    /// 7b306dfa326f: mainline 6.17, stable 6.12.42, 6.15.10.
    static let evict: Set<B> = [.snpEvictCacheAfterValidation]
    static let through6_15: Set<B> = through6_14.union([.kexecAcceptsDestinations, .meminfoBalloon]).union(msr).union(snpUnshare)
    static let through6_16: Set<B> = through6_15.union([.vmcoreinfoUnacceptedMapcount])

    /// Written by hand from the verified data, not derived from the table.
    static let reference: [(String, Set<B>)] = [
        ("6.5", []), ("6.5.8", []), ("6.5.9", list), ("6.6", list), ("6.6.47", list),
        ("6.6.48", list.union([.unacceptedFreeForWatermarks])), ("6.6.85", list.union([.unacceptedFreeForWatermarks])),
        ("6.6.86", list.union([.unacceptedFreeForWatermarks, .acceptOneBlockWhileWatermarksZero])),
        ("6.6.87", list.union([.unacceptedFreeForWatermarks, .acceptOneBlockWhileWatermarksZero])),
        ("6.6.88", list.union([.unacceptedFreeForWatermarks, .acceptOneBlockWhileWatermarksZero]).union(msr)),
        ("6.7", list), ("6.8", list.union([.kexecFileTopDown])), ("6.10.6", list.union([.kexecFileTopDown])),
        ("6.10.7", list.union([.kexecFileTopDown, .unacceptedFreeForWatermarks])), ("6.11", through6_11),
        ("6.12", through6_12), ("6.12.0", through6_12), ("6.12.20", through6_12),
        ("6.12.21", through6_14), ("6.12.24", through6_14), ("6.12.25", through6_14.union(msr)), ("6.12.30", through6_14.union(msr)),
        ("6.12.41", through6_14.union(msr)), ("6.12.42", through6_14.union(msr).union(evict)),
        ("6.13", through6_12.union(snpUnshare)), ("6.13.8", through6_12.union(snpUnshare)), ("6.13.9", through6_14.union(snpUnshare)),
        ("6.14", through6_14.union(snpUnshare)), ("6.14.1", through6_14.union(snpUnshare)), ("6.14.3", through6_14.union(snpUnshare)),
        ("6.14.4", through6_14.union(msr).union(snpUnshare)),
        ("6.15", through6_15), ("6.15.9", through6_15), ("6.15.10", through6_15.union(evict)),
        ("6.16", through6_16), ("6.17", through6_16.union(evict)), ("6.19", through6_16.union(evict)),
        ("6.19.3", through6_16.union(evict)),
        // a4b0bf6a40f3 (boot services freed at arch_initcall): mainline 7.0, backports unchecked.
        ("7.0", through6_16.union(evict).union([.reserveUnacceptedEndAligned, .efiBootServicesFreedAtArchInitcall])), ("7.1", Set(B.allCases)),
    ]

    @Test(arguments: reference)
    func behavioursPerRelease(release: String, expected: Set<B>) throws {
        let k = try KernelVersion(parsing: release)
        #expect(k.behaviours == expected, "\(release): \(k.behaviours.map(\.rawValue).sorted()) != \(expected.map(\.rawValue).sorted())")
        #expect(k.rawValue == release)
    }

    /// Every row of the table is exercised: each behaviour's mainline release
    /// and each backport's point release are reference rows that have it, and
    /// the rows just before them (previous series, previous point) do not.
    @Test func everyTableRowIsInTheReference() throws {
        let rows = Dictionary(uniqueKeysWithValues: Self.reference.map { ($0.0, $0.1) })
        for b in B.allCases {
            let o = b.origin
            let m = o.mainline.description
            #expect(rows[m]?.contains(b) == true, "\(b) mainline \(m) has no reference row")
            for p in o.backports {
                #expect(rows[p.description]?.contains(b) == true, "\(b) backport \(p) has no reference row")
                let before = KernelRelease(p.major, p.minor, p.point - 1).description
                #expect(rows[before].map { !$0.contains(b) } == true, "\(b): no reference row \(before) without the backport")
            }
        }
    }

    /// The five strings earlier versions of cocomem took keep the behaviour
    /// the old enum gave them by ordered comparisons (so the goldens stand).
    @Test(arguments: [("6.5", 0), ("6.11", 1), ("6.12", 2), ("6.16", 3), ("7.0", 4)])
    func legacyGenerationsAreUnchanged(release: String, order: Int) throws {
        let k = try KernelVersion(parsing: release)
        #expect(k.targetsPromoWatermark == (order >= 2))
        #expect(k.unacceptedIsUnusableForWatermarks == (order < 1))
        #expect(k.acceptsOneBlockWhileWatermarksZero == (order >= 3))
        #expect(k.reserveUnacceptedEndAligned == (order >= 4))
        #expect(k.hasPageUnacceptedType == (order >= 2))
        #expect(k.exportsUnacceptedMapcount == (order >= 3))
        #expect(k.acceptsKexecDestinations == (order >= 3))
        #expect(k.kexecFileWalksTopDown == (order >= 1))
    }

    /// 6.12.30 is 6.12.0 plus exactly the behaviours backported to 6.12.y by then.
    @Test func stablePointReleaseAddsExactlyItsBackports() throws {
        let base = try KernelVersion(parsing: "6.12"), point = try KernelVersion(parsing: "6.12.30")
        #expect(point.behaviours.subtracting(base.behaviours) == [.acceptOneBlockWhileWatermarksZero, .snpEarlyAcceptMSR])
        #expect(base.behaviours.isSubset(of: point.behaviours))
        #expect(point.backports.map(\.0) == [.acceptOneBlockWhileWatermarksZero, .snpEarlyAcceptMSR])
        #expect(point.backports.map(\.1.description) == ["6.12.21", "6.12.25"])
        #expect(base.backports.isEmpty)
        let lts6 = try KernelVersion(parsing: "6.6.87")
        #expect(lts6.backports.map(\.1.description) == ["6.6.48", "6.6.86"])
        // The 6.6.y backport of 800f1059c99e accepts up to high: 6.6 has no promo watermark.
        #expect(!lts6.targetsPromoWatermark && lts6.acceptsOneBlockWhileWatermarksZero)
    }

    @Test(arguments: ["6.5", "6.6", "6.6.87", "6.12", "6.12.30", "6.19", "7.0", "7.1", "6.12.0", "6.10.1234"])
    func parsesReleasesAsUsersWriteThem(text: String) throws {
        #expect(try KernelVersion(parsing: text).release.description == text)
    }

    @Test(arguments: [
        ("6.4", "older than 6.5, the first release with unaccepted memory support (CONFIG_UNACCEPTED_MEMORY); nearest known: 6.5, 6.6"),
        ("5.15.100", "older than 6.5"), ("99.1", "newer than the newest release the version table knows; nearest known: 7.0, 7.1"),
        ("7.2", "nearest known: 7.0, 7.1"), ("6.20", "is not a Linux release; nearest known: 6.19, 7.0"),
        ("6.12.x", "is not a release"), ("v6.12.30", "starts with 'v'"), ("6.8.0-45-generic", "distribution suffix"),
        ("6.12-rc3", "release-candidate"), ("6", "is not a release"), ("", "is not a release"), ("6.12.30.1", "is not a release"),
        ("6..12", "is not a release"), ("６.12", "is not a release"), ("6.12.99999", "is not a release"),
    ])
    func rejectsWithAClearMessage(text: String, message: String) {
        do {
            _ = try KernelVersion(parsing: text)
            Issue.record("'\(text)' parsed")
        } catch let e as CocomemError {
            #expect(e.code == .invalidArgument)
            #expect(e.message.hasPrefix("kernel '\(text)' "))
            #expect(e.message.contains(message), "\(e.message)")
        } catch { Issue.record("\(error)") }
    }

    /// 800f1059c99e reached 6.12.y in 6.12.21: at 248 vCPUs the early
    /// allocations before watermarks exist each accept a 4 MiB block on
    /// 6.12.21 and not on 6.12.20 (Dstack PR 1220's storm).
    @Test func bootDiffersBetweenPointReleasesOfOneSeries() throws {
        // Deferred struct page init off: the whole unaccepted list is there during SMP bring-up.
        let before = try bootResult { $0.memory = 32 << 30; $0.vcpus = 248; $0.kernel.deferredStructPageInit = false; $0.kernel.version = try! KernelVersion(parsing: "6.12.20") }
        let after = try bootResult { $0.memory = 32 << 30; $0.vcpus = 248; $0.kernel.deferredStructPageInit = false; $0.kernel.version = try! KernelVersion(parsing: "6.12.21") }
        #expect(before.acceptedKernelBoot < 3 << 30)
        #expect(after.acceptedKernelBoot > 8 << 30)
        #expect(after.times.earlyAllocations > 5 * before.times.earlyAllocations)
        // 6.12.20 is 6.12.0 here: same outcome and acceptance.
        let base = try bootResult { $0.memory = 32 << 30; $0.vcpus = 248; $0.kernel.deferredStructPageInit = false; $0.kernel.version = .v6_12 }
        #expect(base.acceptedKernelBoot == before.acceptedKernelBoot)
    }

    /// The report names the release, the backports and the commits.
    @Test func reportNamesTheCommits() throws {
        let k = try KernelVersion(parsing: "6.12.30")
        #expect(k.reportText.hasPrefix("Kernel: 6.12.30 (mainline 6.12 + stable backports: 800f1059c99e from 6.12.21, d54d610243a4 from 6.12.25)\n"))
        #expect(k.reportText.contains("  yes d54d610243a4 x86/boot/sev: Avoid shared GHCB page for early memory acceptance (stable 6.12.25)"))
        #expect(k.reportText.contains("  no  7b306dfa326f x86/sev: Evict cache lines during SNP memory validation (from mainline 6.17)"))
        #expect(k.reportText.contains("  yes 800f1059c99e mm/page_alloc: fix memory accept before watermarks gets initialized (stable 6.12.21)"))
        #expect(k.reportText.contains("  no  0862438c9048 efi: Fix reservation of unaccepted memory table (from mainline 7.0)"))
        #expect(KernelVersion.v6_12.reportText.hasPrefix("Kernel: 6.12 (mainline 6.12.0)\n"))
        let json = k.behavioursJSON.serialized()
        #expect(json.contains("\"name\": \"accept_one_block_while_watermarks_zero\""))
        #expect(json.contains("\"source\": \"stable 6.12.21\""))
    }
}
