import XCTest
@testable import Corral

final class OutputBufferTests: XCTestCase {
    func testPlaceholder() {}
}
