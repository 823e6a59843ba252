//! The integration tests, linked as one test binary: a module per area over the shared
//! harness in `common` (a PKI generated per run, the real server on `127.0.0.1:0`, real TLS
//! clients). One crate means one link after a library change, not one per file.

mod common;

mod async_reply;
mod bundle_validation;
mod cli;
mod connection_limits;
mod container;
mod custom_handler;
mod dev_proxy;
mod dev_proxy_tokens;
mod dev_stack;
mod drain;
mod forward;
mod fuzz_regressions;
mod ha_postgres;
mod http_refusals;
mod key_formats;
mod layering;
mod lifecycle;
mod message_definitions;
mod monitoring;
mod operations;
mod operator;
mod refusal_delivery;
mod relay;
mod relay_crash;
mod rest_rules;
mod sender;
mod sender_cli;
mod sender_tokens;
mod tls_admission;
mod tls_chains;
