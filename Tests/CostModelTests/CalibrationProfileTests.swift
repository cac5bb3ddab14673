import CostModel
import Foundation
import MemoryModel
import Testing

/// Issue 17 §2: profiles, ranges and the per-operation write rate.
@Suite struct CalibrationProfileTests {
    @Test func everyBuiltInProfileLoads() throws {
        let names = Calibration.builtInProfiles().map(\.name)
        #expect(names.contains("tdx-gnr") && names.contains("snp-genoa"))
        for n in names {
            let c = try Calibration.builtIn(profile: n)
            #expect(c.profile == n)
        }
    }

    @Test func unknownProfileIsRefusedNamingTheKnownOnes() throws {
        #expect { _ = try Calibration.builtIn(profile: "tdx-nonesuch") } throws: {
            let m = ($0 as? CocomemError)?.message ?? ""
            return m.contains("no calibration profile 'tdx-nonesuch'") && m.contains("tdx-gnr")
        }
    }

    /// A profile overrides only the keys it names; the rest of the entry stays.
    @Test func profileOverlaysOnlyWhatItNames() throws {
        var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: CalibrationLimitsTests.builtInPath))) as? [String: Any])
        var profiles = root["profiles"] as? [String: Any] ?? [:]
        profiles["test"] = ["description": "t", "ops": ["tdx.ept_violation_exit": ["ns": 1234.0, "source": "test"]]]
        root["profiles"] = profiles
        let path = NSTemporaryDirectory() + "calibration-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        let base = try Calibration.load(path: path)
        let p = try Calibration.load(path: path, profile: "test")
        #expect(p[.tdxEPTViolationExit].nanoseconds == 1234)
        #expect(p[.tdxEPTViolationExit].nanosecondsRange == base[.tdxEPTViolationExit].nanosecondsRange)
        #expect(p[.tdxAug4K] == base[.tdxAug4K])
    }

    /// The low end is never dearer than the base values, the high end never cheaper, operation by operation.
    @Test func endsBracketTheBaseValues() throws {
        let c = try Calibration.builtIn()
        #expect(c.hasRanges)
        let (lo, hi, base) = (CostTable(c.atEnd(.low)), CostTable(c.atEnd(.high)), CostTable(c))
        for op in Op.allCases {
            #expect(lo.vcpuPicoseconds[op.index] <= base.vcpuPicoseconds[op.index], "\(op.name)")
            #expect(hi.vcpuPicoseconds[op.index] >= base.vcpuPicoseconds[op.index], "\(op.name)")
        }
        #expect(lo.sharedBytesPerSecond >= base.sharedBytesPerSecond && hi.sharedBytesPerSecond <= base.sharedBytesPerSecond)
    }

    /// An operation with its own write rate charges its bytes at that rate;
    /// the others at the core rate.
    @Test func perOperationWriteRate() throws {
        let c = try Calibration.builtIn()
        let t = CostTable(c)
        let accept = c[.tdxAccept4KSuccess], aug = c[.tdxAug4K]
        let rate = try #require(accept.writeGiBPerSecond)
        let expectAccept = (accept.nanoseconds * 1000).rounded() + (4096 * 1e12 / (rate * 1073741824)).rounded()
        let expectAug = (aug.nanoseconds * 1000).rounded() + (4096 * 1e12 / (c.coreWriteGiBPerSecond * 1073741824)).rounded()
        #expect(Double(t.vcpuPicoseconds[Op.tdxAccept4KSuccess.index]) == expectAccept)
        #expect(Double(t.vcpuPicoseconds[Op.tdxAug4K.index]) == expectAug)
    }

    @Test func calibratedRangeFlagsLargerGuests() throws {
        let r = try #require(try Calibration.builtIn().calibratedRange)
        #expect(r.extrapolation(vcpus: r.maxVCPUs, memory: r.maxMemoryBytes) == nil)
        #expect(r.extrapolation(vcpus: r.maxVCPUs + 1, memory: 1 << 30)?.contains("vCPUs") == true)
        #expect(r.extrapolation(vcpus: 1, memory: r.maxMemoryBytes + (1 << 30))?.contains("GiB") == true)
    }

    @Test func badRangesAreRefused() throws {
        #expect { _ = try CalibrationLimitsTests.load { CalibrationLimitsTests.setOp(&$0, "tdx.ept_violation_exit", "ns_range", [5.0, 1.0]) } } throws: {
            ($0 as? CocomemError)?.message.contains("ops.tdx.ept_violation_exit.ns_range") == true
        }
        #expect { _ = try CalibrationLimitsTests.load { CalibrationLimitsTests.setOp(&$0, "tdx.accept.4k.success", "write_gib_per_s", 0.0) } } throws: {
            ($0 as? CocomemError)?.message.contains("ops.tdx.accept.4k.success.write_gib_per_s") == true
        }
    }

    /// makedumpfile's cost: scan every page, then a per-compressor cost per
    /// page kept; an uncalibrated compressor gives no answer rather than a guess.
    @Test func makedumpfileCost() throws {
        let m = try #require(try Calibration.builtIn().makedumpfile)
        let all = try #require(m.cpuSeconds(totalPages: 1 << 18, storedPages: 1 << 18, compressor: "zlib"))
        let half = try #require(m.cpuSeconds(totalPages: 1 << 18, storedPages: 1 << 17, compressor: "zlib"))
        let lzo = try #require(m.cpuSeconds(totalPages: 1 << 18, storedPages: 1 << 18, compressor: "lzo"))
        #expect(half < all && lzo < all)
        #expect(m.cpuSeconds(totalPages: 1 << 18, storedPages: 1 << 18, compressor: "snappy") == nil)
        let lo = try #require(m.cpuSeconds(totalPages: 1 << 18, storedPages: 1 << 18, compressor: "zlib", end: .low))
        let hi = try #require(m.cpuSeconds(totalPages: 1 << 18, storedPages: 1 << 18, compressor: "zlib", end: .high))
        #expect(lo <= all && all <= hi)
    }
}
