import ArgumentParser
import Foundation

/// `corral`: run jobs with deadlines that hold, whatever the job's
/// descendants do.
@main
struct CorralCommand: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "corral",
        abstract: "Run jobs with deadlines that hold: the whole process tree is stopped, pipes never hang.",
        discussion: """
            Examples:
              corral run --timeout 2s -- ./script.sh
              corral run --timeout 30s --json --shell 'make test'
              corral batch jobs.jsonl -j 64 --output results.jsonl

            Exit codes (run): the job's exit code; 124 timed out; 125 corral's own error;
            126 cannot execute; 127 not found; 128+N killed by signal N.
            """,
        version: "corral \(version)",
        subcommands: subcommands
    )

    #if canImport(CorralAgent)
    static let subcommands: [ParsableCommand.Type] = [RunCommand.self, BatchCommand.self, AgentCommand.self, ServerCommand.self]
    #else
    static let subcommands: [ParsableCommand.Type] = [RunCommand.self, BatchCommand.self]  // the bench build
    #endif

    /// Parses and runs, with corral's exit codes: a usage error is 125 (as
    /// timeout(1) has it), not ArgumentParser's 64.
    static func main() {
        ProcessSetup.prepare()
        // Arguments reach corral as bytes and jobs as text: one that is not
        // UTF-8 would be repaired (each bad byte becoming U+FFFD), and a job
        // would act on a file other than the one named. Refused instead.
        for index in 1..<max(1, Int(CommandLine.argc)) {  // argc may be 0 (execve with no argv)
            guard let argument = CommandLine.unsafeArgv[index] else { continue }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(argument).assumingMemoryBound(to: UInt8.self),
                                            count: strlen(argument))
            guard String(validating: bytes, as: UTF8.self) == nil else { continue }
            let shown = String(decoding: bytes, as: UTF8.self)
            FileHandle.standardError.write(Data("corral: argument \(index) is not valid UTF-8: \"\(shown)\" (corral passes arguments as text)\n".utf8))
            Foundation.exit(ExitCodes.corralError)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            FileHandle.standardError.write(Data(("corral: " + message(for: error) + "\n").utf8))
            if code == .validationFailure || code == .failure {
                FileHandle.standardError.write(Data("Try 'corral --help' for more information.\n".utf8))
            }
            Foundation.exit(ExitCodes.corralError)
        }
    }
}
