import Firmware
import MemoryModel
import Simulation

extension FuzzTarget {
    /// `cocomem compare`'s reader: any text is read (never refused), and
    /// what it keeps must be consistent: no more recognised lines than read,
    /// no empty e820 or node range, and a derived guest size the model
    /// accepts (or the default, with the reason listed as missing).
    static func dmesg(_ text: String) throws {
        let log = DmesgLog.read(text)
        if log.lines.count > log.linesRead { violated("dmesg: \(log.lines.count) lines recognised of \(log.linesRead) read") }
        for e in log.e820 where e.range.isEmpty { violated("dmesg: empty e820 entry \(e.range)") }
        for r in log.nodeRanges where r.isEmpty { violated("dmesg: empty node range \(r)") }
        if let v = log.vcpus, v <= 0 { violated("dmesg: \(v) vCPUs") }
        let d = log.derive()
        if d.scenario.memory < 128 << 20 || d.scenario.memory > ByteCount.maximumGuestSize.value {
            violated("dmesg: derived guest size \(d.scenario.memory) outside the model's range")
        }
    }
}
