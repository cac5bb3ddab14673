import Simulation

extension CalibrationNote {
    /// The lines after a boot's virtual times: the calibration profile, the
    /// band of the times over the calibrated ranges, and a warning when
    /// the guest is larger than any source measured.
    var text: String {
        var o = "  calibration: \(profile.map { "profile \($0)" } ?? "base values")"
        if let b = totalBootBand {
            o += "; over the calibrated ranges total boot \(format3(b.lowerBound))-\(format3(b.upperBound))"
            if let w = workloadBand, w.upperBound > 0 { o += ", workload \(format3(w.lowerBound))-\(format3(w.upperBound))" }
        }
        o += "\n"
        if let e = extrapolation { o += "  outside the calibrated range: \(e); the times are an extrapolation\n" }
        return o
    }
}
