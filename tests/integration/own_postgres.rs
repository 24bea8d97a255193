//! A PostgreSQL server of one test's own, which the test may stop and start again
//! (a database outage) without disturbing the shared cluster every other test uses.

use std::process::Child;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tempfile::TempDir;

use crate::helpers::{free_port, init_cluster, postgres_command, wait_for_postgres};

pub struct OwnPostgres {
    cluster: TempDir,
    port: u16,
    running: Option<Running>,
}

/// The thread that spawned the server: the server lives until the thread is told
/// to stop it, and its parent-death signal ends it should the tests die first.
struct Running {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl OwnPostgres {
    pub async fn start() -> Self {
        let cluster = tokio::task::spawn_blocking(init_cluster)
            .await
            .expect("initdb");
        let mut server = Self {
            cluster,
            port: free_port(),
            running: None,
        };
        server.restart().await;
        server
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Start the server again, on the same port and data, and wait until it
    /// accepts connections.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "already running");
        let mut cmd = postgres_command(self.cluster.path(), self.port);
        let (started, is_started) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let child = cmd.spawn();
            let failed = child.as_ref().err().map(|e| e.to_string());
            let _ = started.send(failed);
            if let Ok(child) = child {
                // A message, or the handle dropped: stop the server.
                let _ = stopped.recv();
                fast_shutdown(child);
            }
        });
        let failed = tokio::task::spawn_blocking(move || is_started.recv())
            .await
            .expect("join")
            .expect("postgres thread");
        assert!(failed.is_none(), "cannot start postgres: {failed:?}");
        self.running = Some(Running { stop, thread });
        wait_for_postgres(&self.url()).await;
    }

    /// Stop the server as an operator would (a fast shutdown: sessions are ended),
    /// and wait until it is gone.
    pub async fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let _ = running.stop.send(());
        tokio::task::spawn_blocking(move || running.thread.join())
            .await
            .expect("join")
            .expect("postgres thread");
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.thread.join();
        }
    }
}

/// SIGINT is PostgreSQL's fast shutdown: it ends every session and exits.
fn fast_shutdown(mut child: Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    let _ = child.wait();
}
