extension StringProtocol {
    /// The lines of a text file, for every line-based parser of cocomem
    /// (memory maps, calls files, VMCOREINFO, calibration-adjacent text).
    ///
    /// A line ends at `\n` or at `\r\n` (Windows, serial-console logs).
    /// Swift reads `"\r\n"` as one `Character`, so `split(separator: "\n")`
    /// never splits a CRLF file; this splits on both. A lone `\r` is not a
    /// line end: it is whitespace, and is dropped at either end of a line
    /// (a parser that splits a line into fields treats one inside it as a
    /// separator or rejects the field, naming the line). Empty lines are
    /// kept, so `enumerated()` gives 0-based line numbers; a final line
    /// ending adds no empty line.
    /// - Complexity: O(n) in the length of the text.
    public func splitLines() -> [SubSequence] {
        var lines = split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        if lines.count > 1, lines.last?.isEmpty == true { lines.removeLast() }
        return lines.map { line in
            var l = line[...]
            while l.first == "\r" { l = l.dropFirst() }
            while l.last == "\r" { l = l.dropLast() }
            return l
        }
    }
}
