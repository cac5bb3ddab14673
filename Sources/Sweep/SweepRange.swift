import Foundation
import MemoryModel

/// A range axis of a sweep file: `4G..1T *2` (geometric: each value the
/// previous times a whole factor of at least 2) or `4G..64G +4G`
/// (arithmetic: each value the previous plus a step above 0). Both start at
/// the first bound and end at the last value not above the second bound.
/// The bounds and the step are sizes (`ByteCount.parse`: `64G`, `1.5T`,
/// `0x1000`) when any of them has a unit, plain whole numbers otherwise
/// (`1..64 *2` for vCPUs). A range that would never end (a step of 0, a
/// factor of 1, a first bound above the second) is an error.
public struct SweepRange: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        case times(UInt64)
        case plus(UInt64)
    }
    public var from: UInt64
    public var to: UInt64
    public var step: Step
    /// Whether the values are sizes (printed with a unit) or plain numbers.
    public var isSize: Bool

    /// Whether `text` is meant as a range: a number, `..`, a number. Such
    /// text is either a valid range or an error; other text (a path such as
    /// `../cal.json`, a version) is a plain value.
    public static func looksLikeRange(_ text: String) -> Bool {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard let dots = t.range(of: ".."), let first = t.first, first.isNumber else { return false }
        let rest = t[dots.upperBound...].drop { $0 == " " }
        return rest.first?.isNumber ?? false
    }

    /// Parses `FROM..TO *FACTOR` or `FROM..TO +STEP`.
    /// - Throws: `.invalidScenario` with the reason (the caller adds the key and line).
    public static func parse(_ text: String) throws -> SweepRange {
        let t = text.trimmingCharacters(in: .whitespaces)
        guard let dots = t.range(of: "..") else { throw CocomemError(.invalidScenario, "'\(t)' is not a range FROM..TO *FACTOR or FROM..TO +STEP") }
        let fromText = String(t[..<dots.lowerBound]).trimmingCharacters(in: .whitespaces)
        let rest = t[dots.upperBound...]
        guard let op = rest.firstIndex(where: { $0 == "*" || $0 == "+" }) else {
            throw CocomemError(.invalidScenario, "range '\(t)' has no step: write '\(t) *2' (geometric) or '\(t) +STEP' (arithmetic)")
        }
        let toText = String(rest[..<op]).trimmingCharacters(in: .whitespaces)
        let stepText = String(rest[rest.index(after: op)...]).trimmingCharacters(in: .whitespaces)
        let isSize = [fromText, toText].contains { Self.hasUnit($0) } || (rest[op] == "+" && Self.hasUnit(stepText))
        func number(_ s: String, _ what: String) throws -> UInt64 {
            if isSize {
                do { return try ByteCount.parse(s).value } catch let e as CocomemError {
                    throw CocomemError(.invalidScenario, "range '\(t)': \(what) \(e.message)")
                }
            }
            guard let v = UInt64(s) else { throw CocomemError(.invalidScenario, "range '\(t)': \(what) '\(s)' is not a whole number") }
            return v
        }
        let from = try number(fromText, "first bound")
        let to = try number(toText, "second bound")
        let step: Step
        if rest[op] == "*" {
            guard let f = UInt64(stepText) else { throw CocomemError(.invalidScenario, "range '\(t)': the factor '\(stepText)' is not a whole number") }
            guard f >= 2 else { throw CocomemError(.invalidScenario, "range '\(t)' never ends: the factor must be at least 2, got \(f)") }
            guard from > 0 else { throw CocomemError(.invalidScenario, "range '\(t)' never ends: a geometric range cannot start at 0") }
            step = .times(f)
        } else {
            let s = try number(stepText, "step")
            guard s > 0 else { throw CocomemError(.invalidScenario, "range '\(t)' never ends: the step must be above 0") }
            step = .plus(s)
        }
        guard from <= to else { throw CocomemError(.invalidScenario, "range '\(t)' never ends: the first bound is above the second") }
        return SweepRange(from: from, to: to, step: step, isSize: isSize)
    }

    static func hasUnit(_ s: String) -> Bool {
        if s.lowercased().hasPrefix("0x") { return false }
        return s.contains { $0.isLetter }
    }

    /// How many values the range has, without listing them.
    /// - Complexity: O(log(to / from)) for a geometric range, O(1) otherwise.
    public var count: UInt64 {
        switch step {
        case .plus(let s): return (to - from) / s + 1
        case .times(let f):
            var n: UInt64 = 0
            var v = from
            while v <= to {
                n += 1
                let (next, overflow) = v.multipliedReportingOverflow(by: f)
                if overflow { break }
                v = next
            }
            return n
        }
    }

    /// The value at `index` (0-based, below `count`).
    public func value(at index: UInt64) -> UInt64 {
        switch step {
        case .plus(let s): return from + index * s
        case .times(let f):
            var v = from
            for _ in 0..<index { v *= f }
            return v
        }
    }

    /// A value as the file would write it: sizes with the largest binary
    /// unit that divides them (`64G`, `4100M`), numbers as they are.
    public func text(_ v: UInt64) -> String { isSize ? Self.sizeText(v) : String(v) }

    public static func sizeText(_ v: UInt64) -> String {
        for (shift, unit) in [(50, "P"), (40, "T"), (30, "G"), (20, "M"), (10, "K")] where v != 0 && v % (1 << UInt64(shift)) == 0 {
            return String(v >> UInt64(shift)) + unit
        }
        return String(v)
    }

    /// The resolution a threshold search uses by default: the arithmetic
    /// step; for a geometric range 1 GiB (sizes) or 1 (numbers).
    public var defaultResolution: UInt64 {
        if case .plus(let s) = step { return s }
        return isSize ? 1 << 30 : 1
    }
}
