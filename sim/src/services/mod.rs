//! Launchers for the real services that tests and `ferry drill` run on loopback:
//! moto (S3 and Route53) and etcd, a SigV4-checking S3, and a throttling Route53 proxy.
//!
//! Each launcher finds the binary, picks free 127.0.0.1 ports, starts the
//! process with its stderr/stdout captured to a log file, waits (bounded) until
//! the service answers, and kills the process when the handle is dropped. A
//! start-up failure says how to install the missing tool or shows the tail of
//! the service's own log, because "it did not start" alone helps nobody.
//!
//! Processes are spawned with `tokio::process` and `kill_on_drop(true)`, so a
//! handle dropped by a panicking test still takes its process down; `Drop` also
//! sends the kill explicitly so the port is released before the next test.

pub mod chaos_proxy;
mod etcd;
mod moto;
mod process;
pub mod s3;

pub use chaos_proxy::Route53ChaosProxy;
pub use etcd::{EtcdCluster, EtcdServer, EtcdServerTls, Restore};
pub use moto::MotoServer;
pub use process::{ETCD_INSTALL_HINT, MOTO_INSTALL_HINT, free_port};
pub use s3::SigV4S3Server;
