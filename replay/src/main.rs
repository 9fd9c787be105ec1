//! `ledger-replay`: the audit CLI. Its commands are built in their own issue; until then it
//! says so and exits non-zero rather than pretending to have checked anything.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("ledger-replay: no commands are implemented yet (see the audit replay CLI issue)");
    std::process::exit(2);
}
