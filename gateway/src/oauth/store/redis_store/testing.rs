//! A real `redis-server` for tests: started on a free loopback port without persistence, killed
//! when dropped. Tests that need it skip (saying so) when `redis-server` is not installed.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::config::ReplicaSettings;
use crate::shared::Shared;

pub struct TestRedis {
    child: Child,
    pub url: String,
}

impl TestRedis {
    /// A fresh server, or None (with a message) when `redis-server` is missing.
    pub fn start() -> Option<TestRedis> {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .ok()?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match child {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    eprintln!("redis-server is not installed: skipping the Redis backend");
                    return None;
                }
                Err(e) => panic!("redis-server did not start: {e}"),
            };
            // Bounded wait for the port (100 × 20 ms); a port taken meanwhile: try another.
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(TestRedis {
                        child,
                        url: format!("redis://127.0.0.1:{port}/0"),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not listen");
    }

    /// A connection under a fresh random prefix (tests sharing a server stay apart).
    pub async fn shared(&self) -> Shared {
        let settings = ReplicaSettings {
            redis_url: self.url.as_str().into(),
            prefix: format!("test-{}", crate::oauth::crypto::random_id()),
            replica_url: "http://127.0.0.1:1".into(),
            secret: "x".repeat(32).into(),
        };
        Shared::connect(&settings)
            .await
            .expect("test redis answers")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
