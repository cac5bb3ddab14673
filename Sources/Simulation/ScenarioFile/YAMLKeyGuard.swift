import MemoryModel

/// Refuses, before Yams composes a document, the YAML constructs whose
/// keys are collections: the explicit key indicator `? ` and flow
/// collections nested deeper than `maximumFlowDepth`.
///
/// Why: Yams' `Parser.checkDuplicates` groups a mapping's keys and, when two
/// are equal, sorts them with `Node.<`, whose `Array.<` compares each element
/// pair with both `<` and `>`: two comparisons per level, so 2^depth for keys
/// that are nested collections. A 2.8 KB file of nested `? -` keys ran for
/// minutes in the fuzz build (issue 15, found by the `scenario` fuzzer after
/// 3.17 M executions). No cocomem file has a key that is not a scalar (every
/// schema's keys are names), so these constructs are refused with the line,
/// not parsed.
///
/// The scan skips comments, quoted scalars and the lines of block scalars
/// (`|`, `>`), whose text is content, not structure.
/// - Complexity: O(n) in the text's length.
package enum YAMLKeyGuard {
    /// Deepest flow nesting (`[`/`{`) accepted; cocomem's files use 2.
    package static let maximumFlowDepth = 16

    /// Throws `CocomemError(.invalidScenario)` naming `name` and the line.
    package static func check(_ text: String, name: String) throws {
        var line = 1
        var blockParentIndent: Int? = nil
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            defer { line += 1 }
            let bytes = Array(raw.utf8)
            let indent = bytes.prefix { $0 == UInt8(ascii: " ") }.count
            let blank = bytes.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }
            if let parent = blockParentIndent {
                if blank || indent > parent { continue }
                blockParentIndent = nil
            }
            if try scanLine(bytes, line: line, name: name) { blockParentIndent = indent }
        }
    }

    /// Scans one line outside block scalars; returns whether it opens one.
    private static func scanLine(_ b: [UInt8], line: Int, name: String) throws -> Bool {
        var depth = 0
        var i = 0
        var lastToken: UInt8 = 0  // the last byte outside quotes that is not a space
        // Whether a node may start here: at the line's start, after the
        // indicators `- `, `? `, `: `, or after `[`, `{`, `,` in flow; inside a
        // plain scalar a `?` is text.
        var nodeMayStart = true
        while i < b.count {
            let c = b[i]
            let atTokenStart = i == 0 || b[i - 1] == UInt8(ascii: " ") || b[i - 1] == UInt8(ascii: "\t")
            let followedBySpace = i + 1 == b.count || b[i + 1] == UInt8(ascii: " ") || b[i + 1] == UInt8(ascii: "\t")
            defer {
                if c != UInt8(ascii: " ") && c != UInt8(ascii: "\t") && c != UInt8(ascii: "\r") {
                    let indicator = (c == UInt8(ascii: "-") || c == UInt8(ascii: "?") || c == UInt8(ascii: ":")) && followedBySpace
                    let flowOpen = depth > 0 && (c == UInt8(ascii: "[") || c == UInt8(ascii: "{") || c == UInt8(ascii: ","))
                    nodeMayStart = indicator || flowOpen
                }
            }
            switch c {
            case UInt8(ascii: "#") where atTokenStart:
                return opensBlockScalar(lastToken)
            case UInt8(ascii: "'") where startsScalar(b, i), UInt8(ascii: "\"") where startsScalar(b, i):
                i = endOfQuoted(b, from: i)
                lastToken = c
                continue
            case UInt8(ascii: "?") where atTokenStart && nodeMayStart && followedBySpace:
                throw CocomemError(.invalidScenario, "\(name) line \(line): an explicit mapping key ('? ') is not part of the format: every key is a name")
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maximumFlowDepth {
                    throw CocomemError(.invalidScenario, "\(name) line \(line): flow collections nested deeper than \(maximumFlowDepth) levels")
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
            default: break
            }
            if c != UInt8(ascii: " ") && c != UInt8(ascii: "\t") && c != UInt8(ascii: "\r") { lastToken = c }
            i += 1
        }
        return opensBlockScalar(lastToken) || endsWithBlockHeader(b)
    }

    /// A quote opens a quoted scalar only where a scalar can start (an
    /// apostrophe inside a plain word is text).
    private static func startsScalar(_ b: [UInt8], _ i: Int) -> Bool {
        guard i > 0 else { return true }
        let p = b[i - 1]
        return p == UInt8(ascii: " ") || p == UInt8(ascii: "\t") || p == UInt8(ascii: "[") || p == UInt8(ascii: "{") || p == UInt8(ascii: ",")
    }

    private static func opensBlockScalar(_ last: UInt8) -> Bool {
        last == UInt8(ascii: "|") || last == UInt8(ascii: ">")
    }

    /// `|-`, `|+`, `>2` and the like: a block scalar header with indicators.
    private static func endsWithBlockHeader(_ b: [UInt8]) -> Bool {
        var tail = b[...]
        while let l = tail.last, l == UInt8(ascii: " ") || l == UInt8(ascii: "\r") { tail = tail.dropLast() }
        var j = tail.endIndex
        while j > tail.startIndex, let p = Optional(tail[j - 1]),
              p == UInt8(ascii: "-") || p == UInt8(ascii: "+") || (p >= UInt8(ascii: "1") && p <= UInt8(ascii: "9")) {
            j -= 1
        }
        guard j > tail.startIndex, j < tail.endIndex else { return false }
        let header = tail[j - 1]
        guard header == UInt8(ascii: "|") || header == UInt8(ascii: ">") else { return false }
        return j - 1 == tail.startIndex || tail[j - 2] == UInt8(ascii: " ")
    }

    /// The index after a quoted scalar starting at `start` (or the line's end).
    private static func endOfQuoted(_ b: [UInt8], from start: Int) -> Int {
        let q = b[start]
        var i = start + 1
        while i < b.count {
            if q == UInt8(ascii: "\"") && b[i] == UInt8(ascii: "\\") { i += 2; continue }
            if b[i] == q {
                if q == UInt8(ascii: "'") && i + 1 < b.count && b[i + 1] == q { i += 2; continue }
                return i + 1
            }
            i += 1
        }
        return b.count
    }
}
