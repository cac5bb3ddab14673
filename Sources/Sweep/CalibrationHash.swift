public import CostModel

extension Calibration {
    /// A hash of every number the model reads from the calibration (each
    /// operation's ns, bytes, serial ns and own write rate in `Op` order, the two write
    /// rates), the same on every machine: two files with the same numbers
    /// give the same results and the same hash.
    public var stableHash: String {
        var h = StableHash()
        for op in ops {
            h.add("\(op.nanoseconds) \(op.bytesWritten) \(op.serialNanoseconds)")
            // Only when set, so a file without per-operation rates hashes as before.
            if let w = op.writeGiBPerSecond { h.add("write \(w)") }
        }
        h.add("\(coreWriteGiBPerSecond) \(sharedWriteGiBPerSecond)")
        return h.hex
    }
}
