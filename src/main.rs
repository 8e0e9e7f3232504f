fn main() -> std::process::ExitCode {
    parbake::main()
}
