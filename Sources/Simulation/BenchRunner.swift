import CostModel
import Foundation
import MemoryModel
import TDXModule

/// Wall-clock and peak-memory measurements of the simulator itself.
public enum BenchRunner {
    static func peakRSSBytes() -> UInt64 {
        var u = rusage()
        getrusage(__rusage_who_t(0), &u)
        return UInt64(u.ru_maxrss) * 1024
    }

    public static func run(sizes: [String]) throws -> String {
        let cal = try Calibration.builtIn()
        var o = "| memory | accept | host | wall (s) | virtual boot (s) | platform ops | peak RSS (MiB) |\n|---|---|---|---|---|---|---|\n"
        for sz in sizes {
            let mem = try ByteCount.parseGuestMemory(sz).value
            for lazy in [true, false] {
                for hm in HostMappingPolicy.allCases {
                    var s = Scenario()
                    s.memory = mem; s.lazy = lazy; s.kernel.lazyAccept = lazy; s.hostMapping = hm; s.vcpus = 8
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let r = try BootSimulation(scenario: s, calibration: cal).run()
                    let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                    let ops = r.counts.nonZero.filter { $0.0.name.hasPrefix("tdx.") }.reduce(UInt64(0)) { $0 + $1.1 }
                    o += "| \(sz) | \(lazy ? "lazy" : "eager") | \(hm.rawValue) | \(format3(wall)) | \(format3(r.times.totalBoot)) | \(ops) | \(peakRSSBytes() >> 20) |\n"
                }
            }
        }
        return o
    }
}
