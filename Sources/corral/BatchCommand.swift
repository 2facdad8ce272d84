import ArgumentParser
struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "batch", abstract: "Run many jobs from JSON Lines.")
    func run() throws {}
}
