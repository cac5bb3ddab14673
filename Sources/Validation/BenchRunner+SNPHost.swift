import CoCoGuest
import Foundation
import KVM
import MemoryModel

extension BenchRunner {
    /// The SNP host's speed targets (issue 18 §6) on a guest of `size`:
    /// fault in and validate everything at 2M (hugetlb-2m guest_memfd, one
    /// 2M RMP entry and NPT leaf per 2M) and at 4K (4K folios: every 2M
    /// PVALIDATE fails with FAIL_SIZEMISMATCH and falls back to 512 4K
    /// ones), then convert 10% of the 2M guest to shared and back one 4K
    /// page at a time. Returns a Markdown table.
    public static func runSNPHost(size: String) throws -> String {
        let bytes = try ByteCount.parseGuestMemory(size).value
        let pages = alignDown(ByteCount(bytes).frames(), PageLevel.size2M.pages)
        func timed(_ body: () throws -> Void) rethrows -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        var o = "| operation | wall (s) | NPT 2M leaves | NPT 4K leaves | validated pages | RMP runs | peak RSS (MiB) |\n|---|---|---|---|---|---|---|\n"
        func row(_ name: String, _ t: Double, _ vm: SNPVM) {
            o += "| \(name) | \(String(format: "%.3f", t)) | \(vm.privatePages2M) | \(vm.privatePages4K) | \(vm.validatedPages) | \(vm.rmpRuns) | \(peakRSSBytes() >> 20) |\n"
        }
        var huge: SNPVM? = nil
        for backing in [GmemBacking.hugetlb2M, .buddy] {
            let vm = try SNPVM(vcpus: 8, slots: [Memslot(id: 1, baseGFN: GuestFrameNumber(0), pages: pages, backing: backing)])
            let guest = SNPHostGuest(host: vm)
            var failure: String?
            let t = timed { failure = guest.accept(Range(start: GuestFrameNumber(0), count: pages)) }
            if let failure { throw CocomemError(.invalidArgument, "snp host bench: \(failure)") }
            row("fault in + validate \(size) (\(backing == .hugetlb2M ? "2M, hugetlb-2m" : "4K, 4K folios"))", t, vm)
            if backing == .hugetlb2M { huge = vm }
        }
        if let vm = huge {
            let tenth = alignDown(pages / 10, 512)
            let t1 = timed { vm.convertInPieces(Range(raw: 0..<tenth), toPrivate: false) }
            row("convert 10% to shared in 4K pieces", t1, vm)
            let t2 = timed { vm.convertInPieces(Range(raw: 0..<tenth), toPrivate: true) }
            row("convert it back to private in 4K pieces", t2, vm)
        }
        return o
    }
}
