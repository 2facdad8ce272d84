import CLibUV

/// libuv's negative error codes, as names and messages.
enum UVError {
    static func message(_ status: Int32) -> String {
        "\(String(cString: uv_err_name(status))): \(String(cString: uv_strerror(status)))"
    }
}
