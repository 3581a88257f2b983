//! Free loopback ports for brokers and proxies.
//!
//! The OS picks a port by binding port 0; the listener is dropped and the number handed to a
//! process that binds it a moment later. Another process can take the port in between, so
//! callers that start a broker retry with fresh ports when the broker reports the address in use.
//! Within this process, a port is never handed out twice.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

use crate::Error;

/// A 127.0.0.1 port that was free a moment ago and that this process has not handed out before.
pub fn free_port() -> Result<u16, Error> {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        if given.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return Ok(port);
        }
    }
    Err("no free loopback port found after 100 tries".into())
}
