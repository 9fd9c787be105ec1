//! The log on stderr: text lines for people (the default) or one JSON object per line for log
//! collectors (`[server] log_format = "json"`). `RUST_LOG` filters either (default `info`;
//! `info,token_ledger=debug` adds one line per request). Nothing logged carries a token, a
//! secret or a password: the request line has the request id, method, route template, status
//! and duration only.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call does nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        // {"timestamp":"…","level":"DEBUG","message":"request","request_id":"…","route":"…",
        //  "status":200,"duration_us":84,"target":"token_ledger::http"}: the event's fields at
        // the top level, so collectors index them without unnesting.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .try_init(),
    };
}
