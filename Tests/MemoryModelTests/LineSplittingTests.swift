import MemoryModel
import Testing

/// `splitLines()`: the one line splitter of every line-based parser.
@Suite struct LineSplittingTests {
    @Test func lfAndCRLFSplitAlike() {
        #expect("a\nb\n".splitLines() == ["a", "b"])
        #expect("a\r\nb\r\n".splitLines() == ["a", "b"])
        #expect("a\r\n\r\nb".splitLines() == ["a", "", "b"])
        #expect("a\nb\r\nc".splitLines() == ["a", "b", "c"])
        // split(separator: "\n") does not split CRLF: the reason this exists.
        #expect("a\r\nb".split(separator: "\n").count == 1)
    }

    @Test func loneCRIsWhitespace() {
        #expect("a\r\r\nb\r".splitLines() == ["a", "b"])
        #expect("a\rb".splitLines() == ["a\rb"])
        #expect("".splitLines() == [""])
    }
}
